package cluster

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
)

// addTrimmed adds n broadcasts m<first>..m<first+n-1> to key with XADD
// MAXLEN = maxLen (exact trimming), in one Lua script: Redis runs it whole
// before it serves a reader blocked in XREAD, so a reader that is never
// held back still finds that MAXLEN trimmed entries it had not read.
const addTrimmed = `
for i = tonumber(ARGV[2]), tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1 do
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'uid', 'writer', 'nsp', '/', 'type', '3', 'data',
    '{"packet":{"type":2,"data":["m' .. i .. '"]},"opts":{"rooms":[],"except":[],"flags":{}}}')
end
return 1`

// TestTrimmedWhileReading: entries arrive faster than the reader reads
// them and MAXLEN trims some it never read, while the reader is not held
// back (no backpressure, no failure). Every entry is either delivered, in
// order, or counted as trimmed unread: the counter is exact. With a
// MaxLen below ReadCount the reader gets what is left in one read; above
// it, in several, the first of which already follows the gap.
func TestTrimmedWhileReading(t *testing.T) {
	t.Parallel()
	for _, maxLen := range []int{50, 250} {
		t.Run("standalone/maxlen="+strconv.Itoa(maxLen), func(t *testing.T) {
			t.Parallel()
			s := redistest.StartStandalone(t)
			testTrimmedWhileReading(t, s.URL(), s.Do, maxLen)
		})
	}
	t.Run("cluster/maxlen=50", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3)
		testTrimmedWhileReading(t, c.URL(), c.Do, 50)
	})
}

func testTrimmedWhileReading(t *testing.T, url string, do func(...string) (any, error), maxLen int) {
	const rounds, perRound = 3, 1000
	sub := startTransport(t, "sub", fastOpts(url))
	waitReady(t, sub)
	s := subscribe(t, sub, "/", "sub-uid")
	key := streamKeys(sub.opts.StreamName, sub.opts.StreamCount)[0]
	lost := func() int { return int(value(sub.metrics.entriesLost.WithLabelValues(key))) }

	var want []string
	for round := range rounds {
		first := round * perRound
		if _, err := do("EVAL", addTrimmed, "1", key, strconv.Itoa(maxLen), strconv.Itoa(first), strconv.Itoa(perRound)); err != nil {
			t.Fatalf("EVAL: %v", err)
		}
		// What MAXLEN left of the round is its last maxLen entries.
		want = append(want, seqNames("m", first+perRound-maxLen, first+perRound)...)
		published := first + perRound
		// The last entry of a round is never trimmed before the next
		// round starts, so it arrives; the reader counts a loss before
		// it delivers what follows the gap.
		waitFor(t, 30*time.Second, fmt.Sprintf("m%d delivered", published-1), func() bool {
			ev := s.events()
			return len(ev) > 0 && ev[len(ev)-1] == fmt.Sprintf("m%d", published-1)
		})
		if got, n := len(s.events()), lost(); got+n != published {
			t.Fatalf("round %d: delivered %d + counted lost %d != %d published", round, got, n, published)
		}
	}
	checkSequence(t, s.events(), want)
	if n := lost(); n != rounds*(perRound-maxLen) {
		t.Errorf("counted lost %d, want %d", n, rounds*(perRound-maxLen))
	}
}
