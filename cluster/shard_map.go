package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/redis/rueidis"
)

// With sharded pub/sub, the node's channels are grouped by the master that
// serves their slot, and each group is subscribed on one connection to that
// master (pubsub.go). This file keeps the slot-to-master map they are
// placed by.

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// errNoSlotMap: no node of the Redis Cluster answered CLUSTER SLOTS.
var errNoSlotMap = errors.New("cluster: no node answered CLUSTER SLOTS")

// slotMap gives the address of the master serving each slot, as rueidis
// names its nodes (the keys of Client.Nodes). A slot no master serves
// maps to "". A standalone Redis (sharded pub/sub on Redis 7 without
// Cluster) has a single "shard": every slot maps to standaloneShard.
type slotMap struct {
	masters    [slotCount]string
	standalone bool
}

// standaloneShard is the address of the only shard of a standalone Redis:
// the connection is taken from the transport's client itself.
const standaloneShard = ""

// master returns the address of the master serving slot, false if none
// does.
func (m *slotMap) master(slot uint16) (string, bool) {
	if m.standalone {
		return standaloneShard, true
	}
	if int(slot) >= slotCount {
		return "", false
	}
	a := m.masters[slot]
	return a, a != ""
}

// fetchSlotMap asks the Redis Cluster which master serves each slot. On a
// standalone Redis every slot is served by the client's own connection.
func fetchSlotMap(ctx context.Context, c rueidis.Client, timeout func() (context.Context, context.CancelFunc)) (*slotMap, error) {
	if c.Mode() != rueidis.ClientModeCluster {
		return &slotMap{standalone: true}, nil
	}
	var errs error
	for addr, nc := range c.Nodes() {
		cctx, cancel := timeout()
		reply, err := nc.Do(cctx, nc.B().ClusterSlots().Build()).ToArray()
		cancel()
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		m, err := parseClusterSlots(reply, addr)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return m, nil
	}
	if errs == nil {
		errs = errNoSlotMap
	}
	return nil, fmt.Errorf("cluster: reading the slot map: %w", errs)
}

// parseClusterSlots reads a CLUSTER SLOTS reply, naming each master as
// rueidis does: its preferred endpoint and port, the host of the node that
// answered (asked) when the endpoint is empty, none when it is "?".
func parseClusterSlots(reply []rueidis.RedisMessage, asked string) (*slotMap, error) {
	m := &slotMap{}
	for _, r := range reply {
		v, err := r.ToArray()
		if err != nil || len(v) < 3 {
			return nil, fmt.Errorf("cluster: malformed CLUSTER SLOTS entry")
		}
		from, err1 := v[0].AsInt64()
		to, err2 := v[1].AsInt64()
		master, err3 := v[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(master) < 2 || from < 0 || to >= slotCount || from > to {
			return nil, fmt.Errorf("cluster: malformed CLUSTER SLOTS range")
		}
		host, _ := master[0].ToString()
		port, err := master[1].AsInt64()
		if err != nil {
			return nil, fmt.Errorf("cluster: malformed CLUSTER SLOTS port: %w", err)
		}
		switch host {
		case "?":
			continue // a master of unknown endpoint: as if none
		case "":
			host, _, _ = net.SplitHostPort(asked)
		}
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		for s := from; s <= to; s++ {
			m.masters[s] = addr
		}
	}
	return m, nil
}

// slotOf returns the hash slot of a channel as the client computes it (so
// that the SSUBSCRIBE commands grouped by it never span two slots), or
// false before the client is connected to a Redis Cluster.
func slotOf(c rueidis.Client, channel string) (uint16, bool) {
	if c.Mode() != rueidis.ClientModeCluster {
		return 0, true
	}
	cmd := c.B().Spublish().Channel(channel).Message("").Build()
	s := cmd.Slot()
	if s&noSlot != 0 || int(s) >= slotCount {
		return 0, false
	}
	return s, true
}
