package functions

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// device-twin, in every guest language, behaves as docs/FUNCTIONS.md
// says: state per device, one alert per reading above the threshold,
// the offline timer, the HTTP read.
func TestDeviceTwin(t *testing.T) {
	for lang, build := range guests(t) {
		t.Run(lang, func(t *testing.T) {
			wasm := build(t)
			a := startAgent(t, fileBucket(t), Config{Workers: true})
			a.createTopic(t, "telemetry", 4)
			a.createTopic(t, "alerts", 2)
			deployTwin(t, a, wasm, map[string]string{"offline_after": "1s"})
			want := map[string][]float64{}
			for i := range 60 {
				dev := fmt.Sprintf("d%d", i%6)
				temp := float64(50 + (i*7)%60)
				want[dev] = append(want[dev], temp)
				a.produce(t, "telemetry", dev, fmt.Sprintf(`{"temp": %v}`, temp))
			}
			a.produce(t, "telemetry", "d0", `not json`)
			a.waitCaughtUp(t, "device-twin", "telemetry", 60*time.Second)
			hot := 0
			for dev, temps := range want {
				st := a.state(t, "device-twin", dev)
				mn, mx := temps[0], temps[0]
				for _, v := range temps {
					mn, mx = min(mn, v), max(mx, v)
					if v > 80 {
						hot++
					}
				}
				if st["count"] != float64(len(temps)) || st["min"] != mn || st["max"] != mx || st["last"] != temps[len(temps)-1] {
					t.Fatalf("%s: state %v, want count %d min %v max %v last %v", dev, st, len(temps), mn, mx, temps[len(temps)-1])
				}
			}
			alerts := a.readAll(t, "alerts")
			if len(alerts) != hot {
				t.Fatalf("%d alerts, want %d", len(alerts), hot)
			}
			for _, r := range alerts {
				var v map[string]any
				if err := json.Unmarshal(r.Value, &v); err != nil || v["device"] != string(r.Key) || v["temp"].(float64) <= 80 {
					t.Fatalf("alert %s = %s", r.Key, r.Value)
				}
			}
			dlq := a.readAll(t, "device-twin.dlq")
			if len(dlq) != 1 || string(dlq[0].Value) != "not json" {
				t.Fatalf("dead letters: %v", dlq)
			}
			// The runtime's metrics, per function.
			fn := map[string]string{"function": "device-twin"}
			for _, m := range []struct {
				name   string
				labels map[string]string
				min    float64
			}{
				{"twoway_fn_invocations_total", map[string]string{"function": "device-twin", "trigger": "record"}, 61},
				{"twoway_fn_errors_total", map[string]string{"function": "device-twin", "kind": "status"}, 1},
				{"twoway_fn_dead_letters_total", fn, 1},
				{"twoway_fn_duration_seconds", fn, 61},
				{"twoway_fn_actors", fn, 6},
				{"twoway_fn_state_bytes", fn, 6 * 30},
				{"twoway_fn_instances", fn, 1},
			} {
				if v, ok := a.metric(t, m.name, m.labels); !ok || v < m.min {
					t.Errorf("metric %s%v = %v (present %v), want at least %v", m.name, m.labels, v, ok, m.min)
				}
			}
			if v, ok := a.metric(t, "twoway_fn_consumer_lag", map[string]string{"function": "device-twin", "topic": "telemetry"}); !ok || v != 0 {
				t.Errorf("consumer lag %v (present %v) after catching up", v, ok)
			}
			code, body := get(t, a.http.URL+"/fn/device-twin/devices/d1")
			var st map[string]any
			if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["count"] != float64(len(want["d1"])) {
				t.Fatalf("GET device d1: %d %s", code, body)
			}
			if code, body := get(t, a.http.URL+"/fn/device-twin/devices/nobody"); code != 404 {
				t.Fatalf("GET an unknown device: %d %s", code, body)
			}
			// offline_after 1s: every device goes offline once.
			deadline := time.Now().Add(15 * time.Second)
			for {
				offline := map[string]int{}
				for _, r := range a.readAll(t, "alerts") {
					var v map[string]any
					json.Unmarshal(r.Value, &v)
					if v["status"] == "offline" {
						offline[string(r.Key)]++
					}
				}
				if len(offline) == len(want) {
					for dev, n := range offline {
						if n != 1 {
							t.Fatalf("%s went offline %d times", dev, n)
						}
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("offline alerts for %d devices of %d", len(offline), len(want))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// A timer set before its agent stops fires after another agent starts on
// the bucket, once.
func TestTimersSurviveRestart(t *testing.T) {
	wasm := buildGo(t, "examples/device-twin/go")
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "telemetry", 1)
	a.createTopic(t, "alerts", 1)
	deployTwin(t, a, wasm, map[string]string{"offline_after": "2s"})
	a.produce(t, "telemetry", "d1", `{"temp": 20}`)
	a.waitCaughtUp(t, "device-twin", "telemetry", 60*time.Second)
	var timers int
	a.set.Log().View(a.fns.st, func() { timers = a.fns.st.fns["device-twin"].Timers.Len() })
	if timers != 1 {
		t.Fatalf("%d timers, want 1", timers)
	}
	a.close()
	b2 := startAgent(t, b, Config{Workers: true})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var offline []string
		for _, r := range b2.readAll(t, "alerts") {
			if strings.Contains(string(r.Value), `"offline"`) {
				offline = append(offline, string(r.Value))
			}
		}
		if len(offline) == 1 {
			break
		}
		if len(offline) > 1 || time.Now().After(deadline) {
			t.Fatalf("offline alerts after the restart: %v", offline)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Fired once: the timer is gone, and nothing more comes.
	time.Sleep(500 * time.Millisecond)
	if n := len(b2.readAll(t, "alerts")); n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
}
