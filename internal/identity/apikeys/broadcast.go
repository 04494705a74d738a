package apikeys

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const (
	// revokedChannel carries the hex digest of every revoked key to every replica.
	revokedChannel = "apikeys:revoked"
	// publishTimeout bounds telling the other replicas: the revocation is already durable and in
	// force here, and a replica that misses it drops the key within auth.key_local_ttl anyway.
	publishTimeout = time.Second
)

// announce tells every replica (this one included) to drop the revoked keys from memory now.
func (s *Service) announce(ctx context.Context, digests [][]byte) error {
	if len(digests) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, digest := range digests {
		pipe.Publish(ctx, revokedChannel, hex.EncodeToString(digest))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d revocations: %w", len(digests), err)
	}
	return nil
}

// listen applies the revocations other replicas announce until the subscription is closed.
// go-redis reconnects and subscribes again after Redis comes back; announcements sent in between
// are lost, so every (re)subscription empties the cache: a revocation missed during an outage
// takes effect at once when Redis returns, and within auth.key_local_ttl even if it never does.
func (s *Service) listen(sub *redis.PubSub) {
	for msg := range sub.ChannelWithSubscriptions() {
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "subscribe" {
				s.local.evictAll()
			}
		case *redis.Message:
			digest, err := hex.DecodeString(msg.Payload)
			if err != nil {
				s.log.Warn("ignoring a malformed revocation announcement", zap.Error(err))
				continue
			}
			s.local.evict(digest)
		}
	}
}
