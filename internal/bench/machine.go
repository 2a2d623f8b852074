package bench

import (
	"bufio"
	"os"
	"runtime"
	"strings"
)

// Machine describes where a benchmark ran, so that results from different
// machines are not compared by mistake. It names no host.
type Machine struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	NumCPU    int    `json:"num_cpu"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go_version"`
}

// CurrentMachine describes the machine the process runs on.
func CurrentMachine() Machine {
	return Machine{
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		CPUModel:  cpuModel("/proc/cpuinfo"),
		GoVersion: runtime.Version(),
	}
}

// cpuModel reads the first processor's model from a Linux cpuinfo file, or
// returns "" when there is none (other systems, containers without /proc).
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	// x86 (and most arm64 kernels) say "model name"; others fall back to
	// "Model" (arm boards), "cpu" (ppc64) or "uarch" (riscv).
	fallback := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		value = strings.TrimSpace(value)
		if !ok || value == "" {
			continue
		}
		switch strings.TrimSpace(name) {
		case "model name":
			return value
		case "Model", "cpu", "uarch":
			if fallback == "" {
				fallback = value
			}
		}
	}
	return fallback
}
