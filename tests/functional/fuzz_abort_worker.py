"""A fuzz worker that aborts the process on task 2, as an XLA check failure would."""

import json
import os
import sys

from jaxconv.bench import fuzz


def main():
    for line in sys.stdin.readlines():
        if json.loads(line)["id"] == 2:
            print(json.dumps({"start": 2}), flush=True)
            os.abort()
        sys.stdin = iter([line])
        fuzz._worker()


if __name__ == "__main__":
    main()
