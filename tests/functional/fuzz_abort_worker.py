"""A fuzz worker that aborts the process on task 2, as an XLA check failure would, or with
``hang`` as its argument never finishes task 2, as a compilation that does not end (and then
answers every other task at once, importing nothing, so only the hung one can run out of
time)."""

import json
import os
import sys
import time


def main():
    hang = sys.argv[1:] == ["hang"]
    for line in sys.stdin.readlines():
        task = json.loads(line)["id"]
        if task == 2:
            print(json.dumps({"start": 2}), flush=True)
            if hang:
                time.sleep(600)
            os.abort()
        if hang:
            print(json.dumps({"start": task}) + "\n" + json.dumps({"done": task, "problem": None}),
                  flush=True)
            continue
        from jaxconv.bench import fuzz

        sys.stdin = iter([line])
        fuzz._worker()


if __name__ == "__main__":
    main()
