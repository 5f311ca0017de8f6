"""`classviz-export`: weights/export.py as the wheel installs it, writing into
classviz's home ($CLASSVIZ_HOME, else ~/.cache/classviz), where classviz finds
its default model and MaCo's spectrum from any directory."""

from classviz import export


def main():
    export.main()
