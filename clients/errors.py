"""The one error intake raises: a file refused, with every reason found."""


class IntakeError(Exception):
    """A refused file. ``problems`` holds one human-readable message per problem."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = [str(p) for p in problems] or ["invalid file"]
        super().__init__("; ".join(self.problems))
