"""A fuzz worker that aborts the process on task 2, as an XLA check failure would, or with
``hang`` as its argument never finishes task 2, as a compilation that does not end (and then
answers every other task at once, importing nothing, so only the hung one can run out of
time). With ``fast``, it answers every task at once and aborts on case 1's ``canonical``
check, whatever the task's place in the list (as a resumed run sends fewer tasks)."""

import json
import os
import sys
import time


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else None
    for line in sys.stdin.readlines():
        message = json.loads(line)
        task = message["id"]
        if mode == "fast":
            print(json.dumps({"start": task}), flush=True)
            if message["case"]["index"] == 1 and message["impl"] == "canonical":
                os.abort()
            print(json.dumps({"done": task, "problem": None}), flush=True)
            continue
        if task == 2:
            print(json.dumps({"start": 2}), flush=True)
            if mode == "hang":
                time.sleep(600)
            os.abort()
        if mode == "hang":
            print(json.dumps({"start": task}) + "\n" + json.dumps({"done": task, "problem": None}),
                  flush=True)
            continue
        from jaxconv.bench.fuzz import check

        sys.stdin = iter([line])
        check.serve()


if __name__ == "__main__":
    main()
