"""Python sources the real-editor tests open: one file, shared so every editor is tested on the same code."""

SHAPES = '''import os


def area(width, height):
    return width * height


def perimeter(width, height):
    result = 


def main():
    total = 0

    print(total)
'''

#: the same file with a class after it (the Neovim tests also fill inside a method)
SHAPES_WITH_CLASS = SHAPES + '\n\nclass Shape:\n    def describe(self):\n        return "a shape"\n'
