from tabulate import tabulate


def square(i):
    return i * i


def rectangle_table(sizes):
    rows = [(width, height, width * height) for width, height in sizes]
    return tabulate(rows, headers=["width", "height", "area"])
