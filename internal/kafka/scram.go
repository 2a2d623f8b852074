package kafka

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
)

// Kafka's SCRAM mechanism numbers (KIP-554).
var scramMechs = map[int8]string{1: auth.ScramSHA256, 2: auth.ScramSHA512}

func scramNumber(mech string) int8 {
	for n, m := range scramMechs {
		if m == mech {
			return n
		}
	}
	return 0
}

func strPtr(s string) *string { return &s }

// describeUserSCRAMs lists users' SCRAM mechanisms and iterations.
func (s *Server) describeUserSCRAMs(ctx context.Context, r *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if s.cfg.Auth == nil {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	if err := s.authorize(ctx, auth.OpDescribe, auth.ResCluster, auth.ClusterName); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, errMessage(err)
		return resp
	}
	s.cfg.Auth.Sync(ctx)
	var names []string
	if r.Users == nil {
		for _, u := range s.cfg.Auth.Users() {
			names = append(names, u.Name)
		}
	}
	for _, u := range r.Users {
		names = append(names, u.Name)
	}
	for _, name := range names {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = name
		creds, ok := s.cfg.Auth.Credentials(name)
		if !ok {
			res.ErrorCode, res.ErrorMessage = kerr.ResourceNotFound.Code, strPtr("no such user: "+name)
		}
		var mechs []string
		for m := range creds {
			mechs = append(mechs, m)
		}
		sort.Strings(mechs)
		for _, m := range mechs {
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = scramNumber(m), int32(creds[m])
			res.CredentialInfos = append(res.CredentialInfos, ci)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}

// alterUserSCRAMs sets and deletes SCRAM credentials, one commit per user,
// for a principal with ALTER on the cluster.
func (s *Server) alterUserSCRAMs(ctx context.Context, r *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	if err := s.authorize(ctx, auth.OpAlter, auth.ResCluster, auth.ClusterName); err != nil {
		seen := map[string]bool{}
		for _, name := range scramUsers(r) {
			if seen[name] {
				continue
			}
			seen[name] = true
			res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			res.User, res.ErrorCode, res.ErrorMessage = name, kerr.ClusterAuthorizationFailed.Code, errMessage(err)
			resp.Results = append(resp.Results, res)
		}
		return resp
	}
	type change struct {
		set    map[string]auth.Credential
		remove []string
		err    *kerr.Error
		msg    string
	}
	changes := map[string]*change{}
	var order []string
	get := func(name string) *change {
		c := changes[name]
		if c == nil {
			c = &change{set: map[string]auth.Credential{}}
			changes[name] = c
			order = append(order, name)
		}
		return c
	}
	for _, d := range r.Deletions {
		c := get(d.Name)
		mech, ok := scramMechs[d.Mechanism]
		if !ok {
			c.err, c.msg = kerr.UnsupportedSaslMechanism, "unknown SCRAM mechanism"
			continue
		}
		c.remove = append(c.remove, mech)
	}
	for _, u := range r.Upsertions {
		c := get(u.Name)
		mech, ok := scramMechs[u.Mechanism]
		switch {
		case !ok:
			c.err, c.msg = kerr.UnsupportedSaslMechanism, "unknown SCRAM mechanism"
		case u.Iterations < 4096 || u.Iterations > 16384:
			c.err, c.msg = kerr.UnacceptableCredential, "iterations must be between 4096 and 16384"
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
			c.err, c.msg = kerr.UnacceptableCredential, "no salt or salted password"
		default:
			c.set[mech] = auth.CredentialFromSalted(mech, u.Salt, u.SaltedPassword, int(u.Iterations))
		}
	}
	for _, name := range order {
		c := changes[name]
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = name
		if c.err == nil {
			if _, exists := s.cfg.Auth.Credentials(name); !exists && len(c.set) == 0 {
				c.err, c.msg = kerr.ResourceNotFound, "no such user: "+name
			}
		}
		if c.err == nil {
			if err := s.cfg.Auth.AlterCredentials(ctx, name, c.set, c.remove, time.Now().UnixMilli()); err != nil {
				c.err, c.msg = kerr.UnacceptableCredential, err.Error()
			}
		}
		if c.err != nil {
			res.ErrorCode, res.ErrorMessage = c.err.Code, strPtr(c.msg)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}

// scramUsers lists the users an AlterUserScramCredentials request names,
// deletions first, as the results are ordered.
func scramUsers(r *kmsg.AlterUserSCRAMCredentialsRequest) []string {
	var names []string
	for _, d := range r.Deletions {
		names = append(names, d.Name)
	}
	for _, u := range r.Upsertions {
		names = append(names, u.Name)
	}
	return names
}
