package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits is the log2 of the number of buckets per power of two: 64 buckets
// keep every recorded value within 1/64 (1.6 %) of the truth.
const subBits = 6

const (
	subCount    = 1 << subBits
	histBuckets = (64 - subBits + 1) * subCount
)

// hist is a log-linear histogram of durations in microseconds, safe for
// concurrent recording without a lock: a run records from every client's
// read goroutine at once, and keeping every sample would take gigabytes.
type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(v) - subBits - 1
	return (exp+1)*subCount + int(v>>uint(exp)) - subCount
}

// lowerBound is the smallest value of bucket i; upper is that of i+1.
func lowerBound(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	exp := i/subCount - 1
	return uint64(i%subCount+subCount) << uint(exp)
}

func (h *hist) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	v := uint64(us)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *hist) Count() uint64 { return h.n.Load() }

// Quantile returns the value below which a fraction q of the samples fall,
// as the middle of its bucket (the exact maximum for q = 1).
func (h *hist) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max.Load()) * time.Microsecond
	}
	rank := uint64(q*float64(n)) + 1
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			mid := (lo + hi) / 2
			if m := h.max.Load(); mid > m {
				mid = m
			}
			return time.Duration(mid) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}
