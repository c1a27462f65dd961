//go:build race

package bolt

// raceEnabled shrinks the heaviest fixtures: the race detector slows bbolt down about tenfold.
const raceEnabled = true
