// Package groups is the Kafka consumer group coordinator: the classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets
// (OffsetCommit, OffsetFetch, OffsetDelete) and group administration
// (FindCoordinator, ListGroups, DescribeGroups, DeleteGroups), served by
// any number of stateless agents sharing one bucket.
//
// # Who coordinates a group
//
// One agent at a time coordinates a group: the holder of the lease
// "group/<id>" in the commit log, whose Addr is that agent's advertised
// Kafka address. FindCoordinator, on any agent, answers the holder's address
// while the lease is held and has not been watched going unrenewed for the
// lease duration; otherwise it proposes to acquire the lease at the next
// epoch and answers whoever then holds it. The holder renews all its group
// leases in one commit every quarter of the lease duration, releases the
// leases of groups idle for a while, and releases all of them on Close.
// Every other agent answers group requests with NOT_COORDINATOR, so clients
// look the coordinator up again.
//
// # Membership is in memory; offsets are in the log
//
// As in Kafka, classic membership lives in the coordinator's memory: Kafka's group
// state machine (Empty, PreparingRebalance, CompletingRebalance, Stable),
// member ids handed out first (MEMBER_ID_REQUIRED, JoinGroup v4+), the
// first joiner leading, protocols chosen by vote among those every member
// supports, the leader's assignment relayed by SyncGroup, session timeouts,
// static membership (group.instance.id). The coordinator only relays what
// the leader assigns, so eager and cooperative assignors both work. A new
// coordinator starts with no members: clients get UNKNOWN_MEMBER_ID or
// NOT_COORDINATOR and rejoin.
//
// # KIP-848 consumer groups
//
// Members of the "consumer" group type heartbeat (ConsumerGroupHeartbeat)
// and the coordinator assigns (consumer.go, with the uniform and range
// assignors of assign.go). Their membership, unlike the classic one, is
// durable: the coordinator commits the whole group (TypeConsumerGroup)
// before answering a heartbeat that reveals a change, and a new coordinator
// resumes it from the log, so members keep their epochs and partitions
// across a coordinator change. A group id is used by one protocol at a
// time.
//
// Committed offsets are commits: entry types 200-203, applied by Offsets,
// the package's commitlog.Owner. Every entry carries the epoch of the
// committing coordinator's lease; the acquisition of a lease is committed
// together with a TypeCoordinatorEpoch entry raising the group's epoch, so
// any commit of a deposed coordinator sequenced after the takeover is
// rejected when applied, on every agent alike. OffsetCommit is answered
// once its commit is durable.
//
// # Wiring
//
// The groups are a module (Module): its Owner must be known when the log
// opens, and the coordinator needs the log and the Kafka listener's
// address, so construction has two steps:
//
//	gm, err := groups.NewModule(groups.ModuleConfig{Coordinate: true})
//	coord := gm.Coordinator()
//	svc, err := stream.Open(ctx, bucket, stream.Options{}, gm) // or module.Open
//	srv := kafka.NewServer(kafka.Config{Service: svc, Groups: coord, ...})
//	err = srv.Listen()
//	host, port := srv.Advertised()
//	err = coord.Start(svc.Log(), net.JoinHostPort(host, strconv.Itoa(int(port))), svc)
//	go srv.Serve(ctx)
//	...
//	srv.Close(); coord.Close(); svc.Close()
//
// The Kafka server routes the group API keys listed in MaxVersions to
// Coordinator.Handle, optionally tagging the context with WithClient so
// members carry their client id and host.
//
// Every agent that opens the log must register the groups Owner, even one
// that serves no Kafka clients (NewModule without Coordinate): an agent meeting
// entry types it has no Owner for stops, as the log's rule says.
package groups
