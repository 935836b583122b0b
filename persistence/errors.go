package persistence

import "fmt"

// errorsJoinUnavailable marks a storage failure as ErrUnavailable so callers
// can answer 503 with errors.Is, while keeping Pebble's cause for the logs.
func errorsJoinUnavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
