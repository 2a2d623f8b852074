'use strict';
// node roundtrip.js BROKER TOPIC
//
// kafkajs, a Kafka client twoway did not write, against a twoway agent:
//
//  1. an admin creates TOPIC with 3 partitions;
//  2. an idempotent producer sends wave 1: keyed records with headers (one
//     of them binary) and explicit timestamps, in gzip batches, each to a
//     chosen partition so that every record's offset is known in advance;
//  3. a consumer in group TOPIC-group reads wave 1 and checks every record
//     (partition, offset, key, value, headers, timestamp), each exactly once,
//     then leaves; its offsets are committed by kafkajs as it goes;
//  4. the admin checks the group's committed offsets: the end of wave 1;
//  5. wave 2 is produced and a new consumer in the same group, told to start
//     from the beginning when it has no committed offset, must resume from
//     the committed offsets: it reads wave 2 and nothing of wave 1;
//  6. the committed offsets are checked again.
//
// With TWOWAY_KAFKAJS_CA=FILE it connects with TLS trusting that CA, and
// with TWOWAY_KAFKAJS_SASL=MECHANISM:USER:PASSWORD (scram-sha-256,
// scram-sha-512 or plain) it authenticates with SASL.
//
// Each step prints one line to stdout; the last is "roundtrip ok: N records".
// Anything unexpected prints "FAIL: ..." to stderr and exits 1; a stuck step
// fails after a deadline. kafkajs logs warnings and errors to stderr.

const { Kafka, CompressionTypes, logLevel, Partitioners } = require('kafkajs');

const [broker, topic] = process.argv.slice(2);
if (!broker || !topic) {
  console.error('usage: node roundtrip.js BROKER TOPIC');
  process.exit(2);
}

const partitions = 3;
const perWave = 30;
const group = `${topic}-group`;
const baseTimestamp = 1767225600000;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

const deadline = setTimeout(() => fail(`not done after 90s (last step: ${step})`), 90_000);
let step = 'start';

const security = {};
if (process.env.TWOWAY_KAFKAJS_CA) {
  security.ssl = { ca: [require('fs').readFileSync(process.env.TWOWAY_KAFKAJS_CA, 'utf8')] };
}
if (process.env.TWOWAY_KAFKAJS_SASL) {
  const [mechanism, username, ...rest] = process.env.TWOWAY_KAFKAJS_SASL.split(':');
  security.sasl = { mechanism, username, password: rest.join(':') };
}

const kafka = new Kafka({
  clientId: 'twoway-kafkajs-test',
  brokers: [broker],
  ...security,
  logLevel: logLevel.WARN,
  connectionTimeout: 10_000,
  requestTimeout: 30_000,
  retry: { initialRetryTime: 100, retries: 10 },
});

// record is the i-th record of a wave, as produced and as it must read back.
function record(wave, i) {
  const partition = i % partitions;
  return {
    partition,
    offset: String((wave - 1) * (perWave / partitions) + Math.floor(i / partitions)),
    key: `key-${wave}-${i}`,
    // Repetitive enough for gzip to matter.
    value: `value ${wave} ${i} ` + 'abc'.repeat(i * 5),
    headers: { wave: String(wave), index: String(i), bin: Buffer.from([0, 1, 2, 0xff, i]) },
    timestamp: String(baseTimestamp + wave * 1000 + i),
  };
}

async function produce(producer, wave) {
  step = `produce wave ${wave}`;
  const recs = Array.from({ length: perWave }, (_, i) => record(wave, i));
  // Three requests of ten records, each a gzip batch per partition.
  for (let first = 0; first < perWave; first += 10) {
    const messages = recs.slice(first, first + 10).map((r) => ({
      partition: r.partition,
      key: r.key,
      value: r.value,
      headers: r.headers,
      timestamp: r.timestamp,
    }));
    const meta = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
    for (const m of meta) {
      if (m.errorCode !== 0) fail(`produce to partition ${m.partition}: error code ${m.errorCode}`);
    }
  }
  console.log(`produced ${perWave} records (wave ${wave})`);
  return recs;
}

function checkRecord(want, partition, message) {
  const where = `${topic}/${partition}@${message.offset}`;
  if (partition !== want.partition) fail(`${where}: key ${want.key} in partition ${partition}, want ${want.partition}`);
  if (message.offset !== want.offset) fail(`${where}: key ${want.key} at offset ${message.offset}, want ${want.offset}`);
  const value = message.value === null ? null : message.value.toString();
  if (value !== want.value) fail(`${where}: value ${JSON.stringify(value)}, want ${JSON.stringify(want.value)}`);
  if (message.timestamp !== want.timestamp) fail(`${where}: timestamp ${message.timestamp}, want ${want.timestamp}`);
  const got = message.headers || {};
  const names = Object.keys(got).sort();
  const wantNames = Object.keys(want.headers).sort();
  if (names.join(',') !== wantNames.join(',')) fail(`${where}: header names ${names}, want ${wantNames}`);
  for (const name of wantNames) {
    const w = Buffer.from(want.headers[name]);
    if (!Buffer.isBuffer(got[name]) || !got[name].equals(w)) {
      fail(`${where}: header ${name} = ${JSON.stringify(got[name])}, want ${w.toString('hex')}`);
    }
  }
}

// consume joins the group with a new consumer, reads until every record of
// want arrived (each once, nothing else), then leaves the group.
async function consume(wave, want) {
  step = `consume wave ${wave}`;
  const byKey = new Map(want.map((r) => [r.key, r]));
  const seen = new Set();
  const consumer = kafka.consumer({
    groupId: group,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 500,
  });
  let finished;
  const done = new Promise((resolve) => (finished = resolve));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const key = message.key === null ? null : message.key.toString();
      const w = byKey.get(key);
      if (!w) fail(`wave ${wave}: unexpected record ${topic}/${partition}@${message.offset} key ${key} (committed offsets not used?)`);
      if (seen.has(key)) fail(`wave ${wave}: record ${key} delivered twice`);
      checkRecord(w, partition, message);
      seen.add(key);
      if (seen.size === want.length) finished();
    },
  });
  await done;
  await consumer.disconnect();
  console.log(`consumed ${seen.size} records (wave ${wave}) in group ${group}`);
}

async function checkCommitted(admin, wave) {
  step = `committed offsets after wave ${wave}`;
  const want = String(wave * (perWave / partitions));
  const res = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const parts = res.find((t) => t.topic === topic).partitions.sort((a, b) => a.partition - b.partition);
  const got = parts.map((p) => `${p.partition}=${p.offset}`).join(' ');
  if (parts.length !== partitions || parts.some((p) => p.offset !== want)) {
    fail(`committed offsets of ${group}: ${got}, want ${want} on each of ${partitions} partitions`);
  }
  console.log(`committed offsets: ${got}`);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  step = 'create topic';
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const got = meta.topics[0].partitions.length;
  if (got !== partitions) fail(`topic ${topic} has ${got} partitions, want ${partitions}`);
  console.log(`created topic ${topic} with ${partitions} partitions`);

  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // An idempotent producer retries without limit (kafkajs warns about any
    // limit); the deadline above bounds the run.
    retry: { initialRetryTime: 100, retries: Number.MAX_SAFE_INTEGER },
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();

  const wave1 = await produce(producer, 1);
  await consume(1, wave1);
  await checkCommitted(admin, 1);

  const wave2 = await produce(producer, 2);
  await consume(2, wave2);
  await checkCommitted(admin, 2);

  step = 'disconnect';
  await producer.disconnect();
  await admin.disconnect();
  clearTimeout(deadline);
  console.log(`roundtrip ok: ${wave1.length + wave2.length} records`);
}

main().catch((err) => fail(`${step}: ${err && err.stack ? err.stack : err}`));
