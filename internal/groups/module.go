package groups

import (
	"context"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
)

// Module is the consumer-groups module: the committed offsets (an Owner
// every agent applies), their expiry (a janitor task every agent can run),
// and, on an agent serving Kafka, the Coordinator.
type Module struct {
	offsets   *Offsets
	coord     *Coordinator
	retention time.Duration
}

// ModuleConfig configures the module.
type ModuleConfig struct {
	// Coordinate makes a Coordinator (an agent serving Kafka); without it
	// the module only applies and expires offsets.
	Coordinate bool
	// Coordinator tunes the coordinator.
	Coordinator Config
	// OffsetsRetention: see ExpiryTask. Default 7 days.
	OffsetsRetention time.Duration
}

// NewModule makes the module.
func NewModule(cfg ModuleConfig) (*Module, error) {
	m := &Module{retention: cfg.OffsetsRetention}
	if !cfg.Coordinate {
		m.offsets = NewOffsets()
		return m, nil
	}
	c, _, err := New(cfg.Coordinator)
	if err != nil {
		return nil, err
	}
	m.coord, m.offsets = c, c.offsets
	return m, nil
}

// Name is the module's name.
func (m *Module) Name() string { return "groups" }

// Owners is the offsets state machine.
func (m *Module) Owners() []commitlog.Owner { return []commitlog.Owner{m.offsets} }

// Start adds the expiry task. The coordinator starts serving separately
// (Coordinator.Start), once the Kafka listener knows its address.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	env.Log.AddTask(ExpiryTask(m.offsets, m.retention))
	return nil
}

// Close stops the coordinator, releasing its group leases.
func (m *Module) Close() error {
	if m.coord != nil {
		return m.coord.Close()
	}
	return nil
}

// Coordinator is the module's coordinator, nil unless configured.
func (m *Module) Coordinator() *Coordinator { return m.coord }

// Offsets is the module's state machine.
func (m *Module) Offsets() *Offsets { return m.offsets }
