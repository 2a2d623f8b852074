package functions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/stream"
)

// The HTTP API (docs/HTTP.md, "Functions"):
//
//	PUT    /v1/functions/{name}                  deploy (JSON DeployBody)
//	GET    /v1/functions                         the inventory
//	GET    /v1/functions/{name}                  the live version
//	GET    /v1/functions/{name}/history          every version
//	POST   /v1/functions/{name}/rollback?to=N    deploy version N again
//	DELETE /v1/functions/{name}                  delete it and its actors
//	POST   /v1/functions/{name}/invoke?key=K&method=M   invoke
//	GET    /v1/functions/{name}/actors/{key}     an actor's committed state
//	*      /fn/{name}/...                        the function's HTTP trigger

// DeployBody is the JSON body of a deploy.
type DeployBody struct {
	// Module is the WebAssembly module (base64 in JSON).
	Module    []byte            `json:"module"`
	Grants    []string          `json:"grants,omitempty"`
	Subscribe []string          `json:"subscribe,omitempty"`
	HTTP      bool              `json:"http,omitempty"`
	Config    map[string]string `json:"config,omitempty"`
	Limits    Limits            `json:"limits,omitempty"`
}

// Info is a deployment as the API shows it.
type Info struct {
	Deployment
	DeployedAt string `json:"deployed_at"`
}

func info(d Deployment) Info {
	return Info{Deployment: d, DeployedAt: time.UnixMilli(d.DeployedMs).UTC().Format(time.RFC3339Nano)}
}

// MaxDeployBytes bounds a deploy's body (the module, base64).
const MaxDeployBytes = 128 << 20

// MaxRequestBytes bounds an invocation's input.
const MaxRequestBytes = 8 << 20

// allowed checks that the request's principal may do op on the function
// of the route, answering 403 if not.
func allowed(w http.ResponseWriter, r *http.Request, op string) bool {
	if err := authz.Check(r.Context(), op, authz.ResFunction, r.PathValue("name")); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

func (m *Module) routes(r module.Routes) {
	hf := func(p string, op string, f http.HandlerFunc) {
		r.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if op == "" || allowed(w, r, op) {
				f(w, r)
			}
		}))
	}
	hf("PUT /v1/functions/{name}", "", m.handleDeploy)
	hf("GET /v1/functions", "", func(w http.ResponseWriter, r *http.Request) {
		if err := m.log.Sync(r.Context()); err != nil {
			writeErr(w, err)
			return
		}
		out := []Info{}
		for _, d := range m.List() {
			if authz.Allowed(r.Context(), authz.OpDescribe, authz.ResFunction, d.Name) {
				out = append(out, info(d))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"functions": out})
	})
	hf("GET /v1/functions/{name}", authz.OpDescribe, func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		d, ok := m.Get(r.PathValue("name"))
		if !ok {
			writeErr(w, fmt.Errorf("%w: function %s", ErrNotFound, r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, info(d))
	})
	hf("GET /v1/functions/{name}/history", authz.OpDescribe, func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		h := m.History(r.PathValue("name"))
		if len(h) == 0 {
			writeErr(w, fmt.Errorf("%w: function %s", ErrNotFound, r.PathValue("name")))
			return
		}
		out := []Info{}
		for _, d := range h {
			out = append(out, info(d))
		}
		writeJSON(w, http.StatusOK, map[string]any{"versions": out})
	})
	hf("POST /v1/functions/{name}/rollback", authz.OpAlter, func(w http.ResponseWriter, r *http.Request) {
		to := 0
		if s := r.URL.Query().Get("to"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				writeErr(w, fmt.Errorf("%w: to=%q is not a version number", ErrInvalid, s))
				return
			}
			to = n
		}
		m.log.Sync(r.Context())
		d, err := m.Rollback(r.Context(), r.PathValue("name"), to)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info(d))
	})
	hf("DELETE /v1/functions/{name}", authz.OpDelete, func(w http.ResponseWriter, r *http.Request) {
		m.log.Sync(r.Context())
		if err := m.Delete(r.Context(), r.PathValue("name")); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hf("POST /v1/functions/{name}/invoke", authz.OpWrite, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
		if err != nil {
			writeErr(w, fmt.Errorf("%w: reading the input: %v", ErrInvalid, err))
			return
		}
		q := r.URL.Query()
		_, keyed := q["key"]
		// Catching up with the bucket only when the function is not
		// known here (deployed through another agent a moment ago): an
		// invocation's commit is guarded, so a stale view costs at most a
		// re-run, never a wrong effect.
		if _, ok := m.Get(r.PathValue("name")); !ok {
			m.log.Sync(r.Context())
		}
		resp, err := m.Invoke(r.Context(), r.PathValue("name"), q.Get("key"), keyed, q.Get("method"), body)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeResponse(w, &resp)
	})
	hf("GET /v1/functions/{name}/actors/{key}", authz.OpRead, func(w http.ResponseWriter, r *http.Request) {
		name, key := r.PathValue("name"), r.PathValue("key")
		m.log.Sync(r.Context())
		if _, ok := m.Get(name); !ok {
			writeErr(w, fmt.Errorf("%w: function %s", ErrNotFound, name))
			return
		}
		v, ok, ver, err := m.ActorState(r.Context(), name, key)
		if err != nil {
			writeErr(w, err)
			return
		}
		if !ok {
			writeErr(w, fmt.Errorf("%w: actor %q of %s has no state", ErrNotFound, key, name))
			return
		}
		w.Header().Set("Twoway-Version", strconv.FormatUint(ver, 10))
		if json.Valid(v) {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Write(v)
	})
	r.Handle("/fn/{name}/{path...}", http.HandlerFunc(m.handleTrigger))
	r.Handle("/fn/{name}", http.HandlerFunc(m.handleTrigger))
}

func (m *Module) handleDeploy(w http.ResponseWriter, r *http.Request) {
	m.log.Sync(r.Context())
	name := r.PathValue("name")
	// Deploying a new function is creating it; a new version alters it.
	if _, exists := m.Get(name); exists {
		if !allowed(w, r, authz.OpAlter) {
			return
		}
	} else if err := authz.CheckCreate(r.Context(), authz.ResFunction, name); err != nil {
		writeErr(w, err)
		return
	}
	var body DeployBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxDeployBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeErr(w, fmt.Errorf("%w: the deploy body: %v", ErrInvalid, err))
		return
	}
	if len(body.Module) == 0 {
		writeErr(w, fmt.Errorf("%w: function %s: no module in the deploy body", ErrInvalid, r.PathValue("name")))
		return
	}
	// A function acts with its own principal, bounded by its grants: the
	// deployer may grant only what it may do itself.
	if err := checkGrantACLs(r, body.Grants, body.Subscribe); err != nil {
		writeErr(w, err)
		return
	}
	d, err := m.Deploy(r.Context(), DeployRequest{Name: r.PathValue("name"), Module: body.Module, Grants: body.Grants,
		Subscribe: body.Subscribe, HTTP: body.HTTP, Config: body.Config, Limits: body.Limits})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, info(d))
}

// checkGrantACLs: publish:TOPIC needs WRITE on the topic, read:TOPIC and a
// subscription READ on it.
func checkGrantACLs(r *http.Request, grants, subscribe []string) error {
	for _, g := range grants {
		if t, ok := strings.CutPrefix(g, "publish:"); ok {
			if err := authz.Check(r.Context(), authz.OpWrite, authz.ResTopic, t); err != nil {
				return fmt.Errorf("grant %s: %w", g, err)
			}
		}
		if t, ok := strings.CutPrefix(g, "read:"); ok {
			if err := authz.Check(r.Context(), authz.OpRead, authz.ResTopic, t); err != nil {
				return fmt.Errorf("grant %s: %w", g, err)
			}
		}
	}
	for _, t := range subscribe {
		if err := authz.Check(r.Context(), authz.OpRead, authz.ResTopic, t); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	return nil
}

// handleTrigger serves /fn/{name}/... with the function's guest.
func (m *Module) handleTrigger(w http.ResponseWriter, r *http.Request) {
	if !allowed(w, r, authz.OpWrite) {
		return
	}
	name := r.PathValue("name")
	d, ok := m.Get(name)
	if !ok || !d.HTTP {
		writeErr(w, fmt.Errorf("%w: no function %s serves HTTP (deploy it with --http)", ErrNotFound, name))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		writeErr(w, fmt.Errorf("%w: reading the request body: %v", ErrInvalid, err))
		return
	}
	path := "/" + r.PathValue("path")
	if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(path, "/") {
		path += "/"
	}
	event := func(id string) []byte { return httpEvent(id, r.Method, path, r.URL.RawQuery, r.Header, body) }
	resp, err := m.unkeyed(r.Context(), name, "http", newInvocationID(), event)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeResponse(w, &resp)
}

func writeResponse(w http.ResponseWriter, resp *Response) {
	for _, h := range resp.Headers {
		w.Header().Add(h[0], h[1])
	}
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}

// Error codes of the functions API, as "code" in error bodies.
const (
	CodeBadRequest       = "bad_request"       // 400
	CodeNotGranted       = "not_granted"       // 403: the module imports a capability it is not granted
	CodeForbidden        = "forbidden"         // 403: the principal's ACLs do not allow it
	CodeNotFound         = "not_found"         // 404
	CodeUnknownTopic     = "unknown_topic"     // 404
	CodeInvocationFailed = "invocation_failed" // 500: the guest trapped or broke a limit; nothing was committed
	CodeBusy             = "busy"              // 503: too many conflicting writers to one actor
	CodeOutcomeUnknown   = "outcome_unknown"   // 503: the effects may or may not have been committed
	CodeNotCommitted     = "not_committed"     // 503
	CodeInternal         = "internal"          // 500
)

// APIError is the JSON body of an error answer.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
}

func (e *APIError) Error() string { return e.Message }

func (e *APIError) Unwrap() error {
	switch e.Code {
	case CodeBadRequest:
		return ErrInvalid
	case CodeNotGranted:
		return ErrNotGranted
	case CodeNotFound:
		return ErrNotFound
	case CodeUnknownTopic:
		return stream.ErrUnknownTopic
	case CodeInvocationFailed:
		return ErrInvocation
	case CodeBusy:
		return ErrBusy
	case CodeOutcomeUnknown:
		return commitlog.ErrOutcomeUnknown
	case CodeNotCommitted:
		return commitlog.ErrNotCommitted
	}
	return nil
}

func apiError(err error) *APIError {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e
	}
	e := &APIError{Message: err.Error()}
	set := func(s int, c string) { e.Status, e.Code = s, c }
	switch {
	case errors.Is(err, ErrInvalid):
		set(http.StatusBadRequest, CodeBadRequest)
	case errors.Is(err, ErrNotGranted):
		set(http.StatusForbidden, CodeNotGranted)
	case errors.Is(err, authz.ErrDenied):
		set(http.StatusForbidden, CodeForbidden)
	case errors.Is(err, stream.ErrUnknownTopic):
		set(http.StatusNotFound, CodeUnknownTopic)
	case errors.Is(err, ErrNotFound):
		set(http.StatusNotFound, CodeNotFound)
	case errors.Is(err, ErrInvocation):
		set(http.StatusInternalServerError, CodeInvocationFailed)
	case errors.Is(err, ErrBusy):
		set(http.StatusServiceUnavailable, CodeBusy)
	case errors.Is(err, commitlog.ErrNotCommitted):
		set(http.StatusServiceUnavailable, CodeNotCommitted)
	case errors.Is(err, commitlog.ErrOutcomeUnknown), errors.Is(err, commitlog.ErrClosed):
		set(http.StatusServiceUnavailable, CodeOutcomeUnknown)
	default:
		set(http.StatusInternalServerError, CodeInternal)
	}
	return e
}

func writeErr(w http.ResponseWriter, err error) {
	e := apiError(err)
	// Tells the runtime's errors from a guest's own answers.
	w.Header().Set("Twoway-Error", e.Code)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
