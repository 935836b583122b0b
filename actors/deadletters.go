package actors

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

// ErrNotDead is returned when a dead letter's settlement is not dead (an
// inconsistency that replay refuses to paper over).
var ErrNotDead = errors.New("actors: settlement is not dead")

// MaxDeadLetterPage bounds one page of DeadLetters.
const MaxDeadLetterPage = 1000

// DeadLetters returns up to limit dead settlements with ids after the
// cursor after ("" for the first page), in id (creation) order, and the
// cursor of the next page ("" when this is the last).
func (s *Supervisor) DeadLetters(limit int, after string) ([]*persistence.Settlement, string, error) {
	limit = min(max(limit, 1), MaxDeadLetterPage)
	lower := persistence.PrefixDead
	if after != "" {
		lower = append(persistence.AppendDeadKey(nil, []byte(after)), 0)
	}
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: persistence.PrefixEnd(persistence.PrefixDead)})
	if err != nil {
		return nil, "", fmt.Errorf("actors: dead letters: %w", err)
	}
	var ids []string
	for it.First(); it.Valid() && len(ids) <= limit; it.Next() {
		ids = append(ids, string(it.Key()[len(persistence.PrefixDead):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, "", fmt.Errorf("actors: dead letters: %w", err)
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]*persistence.Settlement, 0, len(ids))
	for _, id := range ids {
		st, err := readSettlement(s.store, id)
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, st)
	}
	return out, next, nil
}

// Replay puts a dead settlement back to work: pending, attempts reset, due
// now, out of the dead letters (one synced batch), and starts it.
// persistence.ErrNotFound when id is not a dead letter.
func (s *Supervisor) Replay(id string) (*persistence.Settlement, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	st, err := s.deadLetter(id)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	st.Status = persistence.StatusPending
	st.Attempts = 0
	st.LastError = ""
	st.NextAttemptAt = &now
	st.UpdatedAt = now
	b := s.store.DB().NewBatch()
	_ = b.Delete(persistence.AppendDeadKey(nil, []byte(id)), nil)
	_ = b.Set(dueKey(st), []byte(st.Wallet), nil)
	if err := setSettlement(b, st); err != nil {
		_ = b.Close()
		return nil, err
	}
	if err := s.store.Commit(b); err != nil {
		return nil, err
	}
	s.dead.Add(-1)
	s.unfinished.Add(1)
	s.log.Info("dead letter replayed", "id", id)
	s.start(st.ID, st.Wallet, nil, nil)
	return st, nil
}

// ReplayAll replays every dead letter and returns how many.
func (s *Supervisor) ReplayAll() (int, error) {
	n := 0
	for {
		// Replayed ones leave the index, so the first page is always next.
		page, _, err := s.DeadLetters(MaxDeadLetterPage, "")
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, st := range page {
			if _, err := s.Replay(st.ID); err != nil {
				return n, err
			}
			n++
		}
	}
}

// DeleteDeadLetter removes id from the dead letters. The settlement record
// stays, status dead, for GET /api/settlements/{id}; it is only no longer
// listed or replayable. persistence.ErrNotFound when id is not a dead letter.
func (s *Supervisor) DeleteDeadLetter(id string) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	key := persistence.AppendDeadKey(nil, []byte(id))
	if _, err := s.store.Get(nil, key); err != nil {
		return err
	}
	b := s.store.DB().NewBatch()
	_ = b.Delete(key, nil)
	if err := s.store.Commit(b); err != nil {
		return err
	}
	s.dead.Add(-1)
	s.log.Info("dead letter deleted", "id", id)
	return nil
}

func (s *Supervisor) deadLetter(id string) (*persistence.Settlement, error) {
	if _, err := s.store.Get(nil, persistence.AppendDeadKey(nil, []byte(id))); err != nil {
		return nil, err
	}
	st, err := readSettlement(s.store, id)
	if err != nil {
		return nil, err
	}
	if st.Status != persistence.StatusDead {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotDead, id, st.Status)
	}
	return st, nil
}
