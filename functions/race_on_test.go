//go:build race

package functions

// raceEnabled: the race detector slows TestFleet tenfold; make test runs
// it again without the detector at full size.
const raceEnabled = true
