//! Shared corpus builders for the benchmarks.
