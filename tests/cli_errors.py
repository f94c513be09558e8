"""What the commands' tests read back: a command's one-line error."""


def one_error_line(capsys, command: str) -> str:
    """A `pgat-hf COMMAND` error: stderr's last line, `pgat-hf COMMAND: error: ...`, with no traceback
    before it (datasets' progress bars may come first)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith(f"pgat-hf {command}: error: "), err
    assert sum("error" in line.lower() for line in lines) == 1, err
    return lines[-1]
