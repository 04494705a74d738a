package docker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"go.uber.org/zap"
)

// probeTimeout bounds the engine call that finds out whether it can limit a container's disk.
const probeTimeout = 3 * time.Second

// diskSupport remembers whether the engine limits a container's storage size: learnt from the
// engine's info once it answers, and corrected by the engine's own refusal of a size.
type diskSupport struct {
	mu     sync.Mutex
	known  bool
	ok     bool
	reason string // why not, for the log
}

// diskLimit reports whether the engine enforces HostConfig.StorageOpt["size"]. It asks the
// engine the first time it answers (a failed probe is asked again next time) and keeps the
// answer; refused marks it false for good.
func (r *Runtime) diskLimit() bool {
	r.disk.mu.Lock()
	defer r.disk.mu.Unlock()
	if r.disk.known {
		return r.disk.ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	res, err := r.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		r.log.Debug("engine info for the disk limit", zap.Error(err))
		return false
	}
	r.disk.known = true
	r.disk.ok, r.disk.reason = storageSizeSupported(res.Info.Driver, res.Info.DriverStatus)
	r.log.Info("disk limits", zap.Bool("enforced", r.disk.ok), zap.String("storage_driver", res.Info.Driver),
		zap.String("reason", r.disk.reason))
	return r.disk.ok
}

// storageSizeSupported says from the engine's storage driver and its status whether a container
// can be given a size: overlay2 on xfs (project quotas: the mount option is not in the info, so
// an engine without prjquota is found out at the first create, see refusedSize), btrfs (qgroups),
// zfs (quotas). Anything else cannot (overlay2 on ext4, vfs).
func storageSizeSupported(driver string, status [][2]string) (bool, string) {
	switch driver {
	case "btrfs", "zfs":
		return true, driver + " quotas"
	case "overlay2":
		for _, kv := range status {
			if kv[0] == "Backing Filesystem" {
				if kv[1] == "xfs" {
					return true, "overlay2 on xfs (project quotas)"
				}
				return false, "overlay2 on " + kv[1] + " has no per-container size (it needs xfs with prjquota)"
			}
		}
		return false, "overlay2 without a known backing filesystem"
	}
	return false, "the " + driver + " storage driver has no per-container size here"
}

// refusedSize reports whether a create failed because the engine cannot give a container a
// size (overlay2 on xfs mounted without prjquota, or another driver's equivalent), and if so
// remembers that it cannot.
func (r *Runtime) refusedSize(err error) bool {
	msg := err.Error()
	if !strings.Contains(msg, "storage-opt") && !strings.Contains(msg, "Storage option") && !strings.Contains(msg, "quota") {
		return false
	}
	r.disk.mu.Lock()
	r.disk.known, r.disk.ok, r.disk.reason = true, false, msg
	r.disk.mu.Unlock()
	r.log.Warn("the engine refused a container size: no disk limits from now on", zap.Error(err))
	return true
}

// storageOpt is the engine's per-container storage options for a disk limit of diskMB (none
// for 0).
func storageOpt(diskMB int64) map[string]string {
	if diskMB == 0 {
		return nil
	}
	return map[string]string{"size": fmt.Sprintf("%dM", diskMB)}
}
