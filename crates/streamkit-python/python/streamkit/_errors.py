"""Error messages that point at the user's code."""

import traceback

#: Filenames given to compiled draw code, so tracebacks name the layer.
DRAW_CODE_PREFIX = "<draw_code:"


def describe(exc: BaseException) -> str:
    """'<draw_code:overlay> line 4, in draw: NameError: name 'x' is not defined'.

    The location is the innermost frame in user code: draw code first, else the
    deepest frame outside the streamkit package.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = None
    for frame in frames:
        if frame.filename.startswith(DRAW_CODE_PREFIX):
            where = frame
    if where is None:
        user = [f for f in frames if "/streamkit/" not in f.filename.replace("\\", "/")]
        where = user[-1] if user else (frames[-1] if frames else None)
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if where is None:
        return message
    return f"{where.filename} line {where.lineno}, in {where.name}: {message}"
