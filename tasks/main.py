"""Example tasks folder: deployed with `multinode deploy tasks/ --project-name=demo`."""

import time
from datetime import timedelta

# Sibling packages import by their own name: the folder is the import root.
from geometry.shapes import rectangle_table, square

from multinode import Multinode

mn = Multinode()


@mn.function(timeout=timedelta(minutes=5))
def slowly_calculate_sum_of_squares(bound, delay_seconds=0.05):
    total = 0
    for i in range(bound):
        total += square(i)
        time.sleep(delay_seconds)
    return total


@mn.function(max_retries=2)
def sum_of_squares_with_progress(bound, delay_seconds=0.05):
    """A generator: each `yield` is visible to callers as the invocation's result."""
    progress = {"num_terms_incorporated": 0, "sum_so_far": 0}
    for i in range(bound):
        progress["num_terms_incorporated"] += 1
        progress["sum_so_far"] += square(i)
        yield progress
        time.sleep(delay_seconds)


@mn.function(cpu=0.5, memory="512 MiB")
def format_rectangles(sizes):
    """Uses `tabulate`, installed from this folder's requirements.txt."""
    return rectangle_table(sizes)
