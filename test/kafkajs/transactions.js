'use strict';
// node transactions.js BROKER TOPIC
//
// kafkajs transactions against a twoway agent:
//
//  1. an admin creates TOPIC-in and TOPIC-out (3 partitions each), and a
//     plain producer writes 30 records to TOPIC-in;
//  2. a transactional producer commits a transaction of 10 records to
//     TOPIC-out, then aborts one of 5;
//  3. consume-transform-produce: a consumer of TOPIC-in in group TOPIC-eos
//     (readUncommitted: false, no auto-commit) copies each batch to
//     TOPIC-out in a transaction that also commits the consumed offsets
//     (sendOffsets), until all 30 are copied;
//  4. the group's committed offsets are the end of TOPIC-in (30 in all);
//  5. a readUncommitted: false consumer of TOPIC-out reads exactly the 10
//     committed and the 30 copied records, each once, none aborted; a
//     readUncommitted: true one also reads the 5 aborted records.
//
// Each step prints one line to stdout; the last is "transactions ok".
// Anything unexpected prints "FAIL: ..." to stderr and exits 1.

const { Kafka, logLevel, Partitioners } = require('kafkajs');

const [broker, topic] = process.argv.slice(2);
if (!broker || !topic) {
  console.error('usage: node transactions.js BROKER TOPIC');
  process.exit(2);
}
const inTopic = `${topic}-in`;
const outTopic = `${topic}-out`;
const group = `${topic}-eos`;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
let step = 'start';
const deadline = setTimeout(() => fail(`not done after 120s (last step: ${step})`), 120_000);

const kafka = new Kafka({
  clientId: 'twoway-kafkajs-txn',
  brokers: [broker],
  logLevel: logLevel.WARN,
  connectionTimeout: 10_000,
  requestTimeout: 30_000,
  retry: { initialRetryTime: 100, retries: 10 },
});

// readAll reads topic from the beginning with a fresh group until n
// records came and a second passed without more.
async function readAll(n, readUncommitted) {
  const consumer = kafka.consumer({ groupId: `${topic}-reader-${readUncommitted}`, readUncommitted, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: outTopic, fromBeginning: true });
  const values = [];
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ message }) => {
      values.push(message.value.toString());
      last = Date.now();
    },
  });
  while (values.length < n || Date.now() - last < 1000) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  return values.sort();
}

async function main() {
  step = 'admin';
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: inTopic, numPartitions: 3 }, { topic: outTopic, numPartitions: 3 }], waitForLeaders: true });
  const plain = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await plain.connect();
  const input = [];
  for (let i = 0; i < 30; i++) input.push({ partition: i % 3, key: `k${i}`, value: `in-${String(i).padStart(2, '0')}` });
  await plain.send({ topic: inTopic, messages: input });
  await plain.disconnect();
  console.log(`produced 30 records to ${inTopic}`);

  step = 'transactional producer';
  const producer = kafka.producer({ transactionalId: `${topic}-txn`, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let txn = await producer.transaction();
  const committed = [];
  for (let i = 0; i < 10; i++) committed.push({ partition: i % 3, value: `committed-${i}` });
  await txn.send({ topic: outTopic, messages: committed });
  await txn.commit();
  txn = await producer.transaction();
  const aborted = [];
  for (let i = 0; i < 5; i++) aborted.push({ partition: i % 3, value: `aborted-${i}` });
  await txn.send({ topic: outTopic, messages: aborted });
  await txn.abort();
  console.log('committed a transaction of 10, aborted one of 5');

  step = 'consume-transform-produce';
  const consumer = kafka.consumer({ groupId: group, readUncommitted: false, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: inTopic, fromBeginning: true });
  let copied = 0;
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      const t = await producer.transaction();
      try {
        await t.send({ topic: outTopic, messages: batch.messages.map((m) => ({ partition: batch.partition, key: m.key, value: `out-${m.value}` })) });
        const next = (BigInt(batch.messages[batch.messages.length - 1].offset) + 1n).toString();
        await t.sendOffsets({ consumerGroupId: group, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
        await t.commit();
        copied += batch.messages.length;
      } catch (e) {
        await t.abort();
        throw e;
      }
    },
  });
  while (copied < 30) await new Promise((r) => setTimeout(r, 50));
  await consumer.disconnect();
  await producer.disconnect();
  console.log(`copied ${copied} records in transactions with their offsets`);

  step = 'committed offsets';
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [inTopic] });
  const sum = offsets[0].partitions.reduce((s, p) => s + Number(p.offset), 0);
  if (sum !== 30) fail(`group ${group} committed ${JSON.stringify(offsets)}, want 30 in all`);
  console.log('committed offsets: 30');

  step = 'read committed';
  const want = committed.map((m) => m.value).concat(input.map((m) => `out-${m.value}`)).sort();
  const got = await readAll(want.length, false);
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`readUncommitted: false read ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  console.log(`read_committed: ${got.length} records`);

  step = 'read uncommitted';
  const wantAll = want.concat(aborted.map((m) => m.value)).sort();
  const all = await readAll(wantAll.length, true);
  if (JSON.stringify(all) !== JSON.stringify(wantAll)) fail(`readUncommitted: true read ${JSON.stringify(all)}, want ${JSON.stringify(wantAll)}`);
  console.log(`read_uncommitted: ${all.length} records`);
  await admin.disconnect();
  clearTimeout(deadline);
  console.log('transactions ok');
}

main().catch((e) => fail(`${step}: ${e.stack || e}`));
