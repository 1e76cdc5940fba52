package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

// moveSlot moves the (empty) hash slot of key to another master of c, as
// redis-cli --cluster reshard does for a slot without keys, and returns the
// slot's new master.
func moveSlot(t *testing.T, c *redistest.Cluster, key string) *redistest.Server {
	t.Helper()
	src := c.NodeForKey(key)
	var dst *redistest.Server
	for _, n := range c.Nodes() {
		if n != src {
			dst = n
			break
		}
	}
	v, err := c.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	slot := strconv.FormatInt(v.(int64), 10)
	id := func(n *redistest.Server) string {
		v, err := n.Do("CLUSTER", "MYID")
		if err != nil {
			t.Fatal(err)
		}
		return v.(string)
	}
	srcID, dstID := id(src), id(dst)
	steps := []struct {
		n    *redistest.Server
		args []string
	}{
		{dst, []string{"CLUSTER", "SETSLOT", slot, "IMPORTING", srcID}},
		{src, []string{"CLUSTER", "SETSLOT", slot, "MIGRATING", dstID}},
		{dst, []string{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
		{src, []string{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
	}
	for _, n := range c.Nodes() {
		if n != src && n != dst {
			steps = append(steps, struct {
				n    *redistest.Server
				args []string
			}{n, []string{"CLUSTER", "SETSLOT", slot, "NODE", dstID}})
		}
	}
	for _, s := range steps {
		if _, err := s.n.Do(s.args...); err != nil {
			t.Fatalf("%v on %s: %v", s.args, s.n.Addr(), err)
		}
	}
	return dst
}

// TestShardedPubSubSlotMigration moves the slot of a subscribed channel to
// another master: Redis drops the channel (sunsubscribe) and the transport
// subscribes it again on its connection to the new master, keeping one
// connection per master.
func TestShardedPubSubSlotMigration(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	o := fastOpts(c.URL())
	o.UseShardedPubSub = true
	a := startTransport(t, "a", o)
	b := startTransport(t, "b", o)
	waitReady(t, a, b)
	const uidA, uidB = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
	sa := subscribe(t, a, "/", uidA)
	subscribe(t, b, "/", uidB)
	private := a.privateChannel("/", uidA)
	ctx := context.Background()
	respond := func(id string) {
		t.Helper()
		err := b.PublishResponse(ctx, uidA, &adapter.Message{UID: uidB, Nsp: "/", Type: adapter.BroadcastClientCount,
			Data: &adapter.BroadcastClientCountData{RequestID: id, ClientCount: 1}})
		if err != nil {
			t.Fatal(err)
		}
	}
	got := func(prefix string) bool {
		for _, m := range sa.all() {
			if d, ok := m.Data.(*adapter.BroadcastClientCountData); ok && strings.HasPrefix(d.RequestID, prefix) {
				return true
			}
		}
		return false
	}
	respond("before")
	waitFor(t, 5*time.Second, "a response before the move", func() bool { return got("before") })

	dst := moveSlot(t, c, private)
	if n := c.NodeForKey(private); n != dst {
		t.Fatalf("the slot of %s is on %s, want %s", private, n.Addr(), dst.Addr())
	}
	// Messages published while the channel moves may be lost (as with
	// Node's adapter): publish until one arrives.
	round := 0
	waitFor(t, 20*time.Second, "a response after the move", func() bool {
		round++
		respond(fmt.Sprintf("after-%d", round))
		return got("after-")
	})
	waitFor(t, 10*time.Second, "the channel subscribed on its new master", func() bool {
		v, err := dst.Do("PUBSUB", "SHARDNUMSUB", private)
		arr, _ := v.([]any)
		return err == nil && len(arr) == 2 && arr[1] == int64(1)
	})
	a.pubsub.mu.Lock()
	conns := map[string]int{}
	for k := range a.pubsub.conns {
		conns[k.addr]++
	}
	a.pubsub.mu.Unlock()
	for addr, n := range conns {
		if n > 1 {
			t.Errorf("%d pub/sub connections to %s", n, addr)
		}
	}
	if n, err := a.ServerCount(ctx, "/"); err != nil || n != 2 {
		t.Errorf("ServerCount after the move = %d, %v", n, err)
	}
}
