package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// TestRedisClusterStoreAndLog: sessions and streams spread over the shards
// of a real Redis Cluster (one key per command, so no cross-slot errors).
func TestRedisClusterStoreAndLog(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: rc.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()

	store := NewRedisStore(c, "")
	for _, pid := range []string{testPID, testPID2, "zzzzzzzzzzzzzzzzzzzz"} {
		if err := store.Persist(ctx, Session{SID: "s-" + pid, PID: pid, Rooms: []string{"r"}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range []string{testPID, testPID2, "zzzzzzzzzzzzzzzzzzzz"} {
		s, err := store.Take(ctx, pid)
		if err != nil || s.SID != "s-"+pid {
			t.Errorf("Take(%s) = %+v, %v", pid, s, err)
		}
	}

	// Namespaces spread over 4 streams, hence over the shards.
	l, err := NewStreamLog(c, StreamLogOptions{StreamName: "app", StreamCount: 4, ReadBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, nsp := range []string{"/", "/chat", "/admin", "/x"} {
		key := cluster.StreamKey("app", 4, nsp)
		start := xadd(t, c, key, broadcast(nsp, nil, nil, false, "start"))
		var want []string
		for i := range 5 {
			want = append(want, xadd(t, c, key, broadcast(nsp, nil, nil, false, "n", i)))
		}
		got, end, err := readAll(t, l, nsp, start)
		if err != nil || end != want[len(want)-1] || len(got) != 5 {
			t.Fatalf("%s (%s): %d packets, end %s, err %v", nsp, key, len(got), end, err)
		}
		for i, p := range got {
			if p.Offset != want[i] {
				t.Errorf("%s: packet %d at %s, want %s", nsp, i, p.Offset, want[i])
			}
		}
	}
}
