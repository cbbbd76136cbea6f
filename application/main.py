"""Example application: invokes the functions deployed from tasks/ as project "demo".

Run it while `multinode dev` is running and after `multinode deploy tasks/ --project-name=demo`.
"""

import time

from multinode import InvocationStatus, get_deployed_function

PROJECT = "demo"

sum_of_squares = get_deployed_function(PROJECT, "slowly_calculate_sum_of_squares")
with_progress = get_deployed_function(PROJECT, "sum_of_squares_with_progress")
rectangles = get_deployed_function(PROJECT, "format_rectangles")


def main() -> None:
    plain_id = sum_of_squares.start(bound=100)
    progress_id = with_progress.start(40, delay_seconds=0.1)
    print(f"started {plain_id} and {progress_id}")

    while True:
        invocation = with_progress.get(progress_id)
        print(f"  {invocation.status.value:<10} progress: {invocation.result}")
        if invocation.status.is_final:
            break
        time.sleep(0.5)

    print("sum of squares below 100:", sum_of_squares.await_result(plain_id))
    print("final progress:", with_progress.await_result(progress_id))
    print(rectangles.call_remote([(1, 2), (3, 4), (5, 6)]))

    print("map over 0..9:", list(sum_of_squares.map(range(10))))
    assert with_progress.get(progress_id).status == InvocationStatus.SUCCEEDED


if __name__ == "__main__":
    main()
