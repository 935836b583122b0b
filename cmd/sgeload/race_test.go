//go:build race

package main

// sync.Pool drops items on purpose under the race detector, so allocation counts lie.
const raceEnabled = true
