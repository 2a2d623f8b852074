// Package fn is the Go SDK for twoway functions: WebAssembly guests (built
// with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) that twoway
// runs on HTTP requests, stream records, timers and direct invocations,
// through the twoway_v1 host ABI (docs/FUNCTIONS.md).
//
// A function registers its handlers in init (inside twoway, a reactor
// module, main is not called):
//
//	func init() {
//		fn.HandleHTTP(mux)        // an ordinary http.Handler
//		fn.HandleRecord(onRecord) // records of the subscribed topics
//		fn.HandleTimer(onTimer)   // the actor's timers
//	}
//
//	func main() { log.Fatal(fn.ListenAndServe(":8080")) }
//
// The effects and capabilities (State, SetState, Publish, SetTimer,
// Config, Log, metrics, Transport) are plain functions acting on the
// current invocation: an instance runs one invocation at a time. The
// effects commit together when the invocation succeeds (status below 400)
// and are discarded otherwise. A handler's error answers 500 (transient:
// retried, then dead-lettered); Permanent marks one as 400 (dead-lettered
// at once); a panic answers 500 with its message.
//
// The same code builds as a plain Go program (a two-way door): outside
// wasip1 the SDK runs against an in-memory host, ListenAndServe serves the
// HTTP handler, state lives in a map, Publish logs the record, timers fire
// through time.AfterFunc, Config reads the environment variable
// TWOWAY_CONFIG_<NAME> (the name upper-cased, other than letters and
// digits as _) and Log goes to slog.Default.
//
// A module imports only the twoway_v1 functions it calls, so it needs only
// the grants its code uses: one that never calls Publish does not import
// publish.
package fn
