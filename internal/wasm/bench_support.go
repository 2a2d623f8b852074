package wasm

import "context"

// Instantiate starts one instance of m (running its _initialize) and
// closes it again: what a call costs on top of a pooled one when no
// instance is idle. For benchmarks (`twoway bench fn`).
func (m *Module) Instantiate(ctx context.Context) error {
	inst, err := m.instantiate(ctx, &callInfo{r: m.r, module: m.name})
	if err != nil {
		return err
	}
	return inst.Close(ctx)
}
