//go:build race

package runtime_test

// raceEnabled makes TestMain build the runtime binary with the race
// detector too, so races in the child process fail the tests.
const raceEnabled = true
