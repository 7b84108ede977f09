//go:build race

package hub

// raceEnabled: the race detector doubles the runtime's stack guard, so
// every goroutine that blocks in a read needs at least a 4 KiB stack.
const raceEnabled = true
