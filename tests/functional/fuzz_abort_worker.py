"""A fuzz worker that aborts the process on task 2, as an XLA check failure would, or with
``hang`` as its argument never finishes task 2, as a compilation that does not end."""

import json
import os
import sys
import time

from jaxconv.bench import fuzz


def main():
    hang = sys.argv[1:] == ["hang"]
    for line in sys.stdin.readlines():
        if json.loads(line)["id"] == 2:
            print(json.dumps({"start": 2}), flush=True)
            if hang:
                time.sleep(600)
            os.abort()
        sys.stdin = iter([line])
        fuzz._worker()


if __name__ == "__main__":
    main()
