"""The `ok`/`FAIL` line each chart check prints, and the count of failures."""


class Checks:
    def __init__(self, name):
        self.name = name
        self.failed = 0

    def __call__(self, what, cond):
        print(f"{'ok  ' if cond else 'FAIL'} [{self.name}] {what}")
        if not cond:
            self.failed += 1
