// Command device-twin is the device-twin example as a Go twoway function:
// it keeps a twin (count, min, max, last temperature) per device from the
// telemetry topic, publishes alerts over a threshold and when a device
// goes quiet, and serves the twins over HTTP.
//
// Inside twoway (a reactor module, main is not called):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o examples/device-twin/go/device-twin.wasm ./examples/device-twin/go
//
// deployed as device-twin with grants state, publish:alerts, timers,
// config and log, subscribed to telemetry, with --http. Outside twoway,
// go run ./examples/device-twin/go serves the same HTTP handler on :8080
// (or $PORT), with in-memory state.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/twoway/twoway/fn"
)

const (
	defaultThreshold    = 80.0
	defaultOfflineAfter = 5 * time.Minute
)

// twin is a device's state.
type twin struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Last  float64 `json:"last"`
}

func init() {
	fn.HandleRecord(onTelemetry)
	fn.HandleTimer(onTimer)
	fn.HandleHTTP(routes())
}

func main() {
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	log.Fatal(fn.ListenAndServe(addr))
}

// parseTemp reads {"temp": <number>}; anything else is an error.
func parseTemp(value []byte) (float64, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(value, &obj); err != nil || obj == nil {
		return 0, errors.New(`value is not a JSON object {"temp": <number>}`)
	}
	raw, ok := obj["temp"]
	var temp float64
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &temp) != nil {
		return 0, errors.New(`value has no numeric "temp"`)
	}
	return temp, nil
}

func onTelemetry(ctx context.Context, r fn.Record) error {
	device := fn.Key()
	temp, err := parseTemp(r.Value)
	if err != nil {
		return fn.Permanent(fmt.Errorf("device %q, offset %d: %w", device, r.Offset, err))
	}
	if device == "" {
		return fn.Permanent(fmt.Errorf("offset %d: record has no key (the device id)", r.Offset))
	}

	t := twin{Min: temp, Max: temp}
	old, found, err := fn.State()
	if err != nil {
		return err
	}
	if found {
		if err := json.Unmarshal(old, &t); err != nil {
			return fmt.Errorf("device %q: stored state: %w", device, err)
		}
	}
	t.Count++
	t.Min = min(t.Min, temp)
	t.Max = max(t.Max, temp)
	t.Last = temp
	state, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := fn.SetState(state); err != nil {
		return err
	}

	if temp > threshold() {
		alert, err := json.Marshal(struct {
			Device string  `json:"device"`
			Temp   float64 `json:"temp"`
			Offset int64   `json:"offset"`
		}{device, temp, r.Offset})
		if err != nil {
			return err
		}
		if err := fn.Publish("alerts", []byte(device), alert); err != nil {
			return err
		}
	}
	return fn.SetTimer("offline", fn.Now().Add(offlineAfter()), nil)
}

// threshold is config threshold, or 80.
func threshold() float64 {
	v, ok := fn.Config("threshold")
	if !ok {
		return defaultThreshold
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		fn.Logger().Warn("config threshold is not a number; using the default", "value", v, "default", defaultThreshold)
		return defaultThreshold
	}
	return f
}

// offlineAfter is config offline_after (a Go duration), or 5m.
func offlineAfter() time.Duration {
	v, ok := fn.Config("offline_after")
	if !ok {
		return defaultOfflineAfter
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fn.Logger().Warn("config offline_after is not a positive duration; using the default", "value", v, "default", defaultOfflineAfter.String())
		return defaultOfflineAfter
	}
	return d
}

func onTimer(ctx context.Context, t fn.Timer) error {
	if t.Name != "offline" {
		return nil
	}
	device := fn.Key()
	alert, err := json.Marshal(map[string]string{"device": device, "status": "offline"})
	if err != nil {
		return err
	}
	return fn.Publish("alerts", []byte(device), alert)
}

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/devices/{id}", getDevice)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	return mux
}

func getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	state, found, err := fn.StateOf(id)
	switch {
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	case !found:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no device " + id})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(state)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
