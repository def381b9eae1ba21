"""Timing for the PyTorch peers of the GPU benchmarks, shared so that every peer is timed the same way."""
import statistics


def time_ms(fn, warmup=3, samples=11, min_ms=5.0):
    """Median milliseconds of one call of fn: CUDA events around enough back-to-back calls to last about
    min_ms (one short call is dominated by the event's own resolution), after warm-up, over `samples`."""
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    reps = max(1, int(min_ms / max(start.elapsed_time(stop), 1e-3)))
    times = []
    for _ in range(samples):
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / reps)
    return statistics.median(times)
