'use strict';
// node configs.js BROKER
//
// kafkajs's admin client against a twoway agent, as provisioning tools use
// it: it creates a compacted topic with configs, describes them (values
// and whether each is the default), alters one, lists topics (the internal
// __consumer_offsets is not a user topic but is in the metadata, flagged
// internal), and refuses an unknown config.
//
// Prints "configs ok" when everything matched; anything unexpected prints
// "FAIL: ..." to stderr and exits 1.

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

const [broker] = process.argv.slice(2);
if (!broker) {
  console.error('usage: node configs.js BROKER');
  process.exit(2);
}

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

setTimeout(() => fail('timed out'), 60000).unref();

const set = {
  'cleanup.policy': 'compact',
  'min.compaction.lag.ms': '1000',
  'delete.retention.ms': '60000',
  'max.message.bytes': '2097152',
  'min.insync.replicas': '2',
  'segment.bytes': '104857600',
  'message.timestamp.type': 'LogAppendTime',
  'unclean.leader.election.enable': 'false',
};

async function main() {
  const kafka = new Kafka({ clientId: 'twoway-configs', brokers: [broker], logLevel: logLevel.WARN, retry: { retries: 3 } });
  const admin = kafka.admin();
  await admin.connect();
  const topic = 'js-configs';
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 2, replicationFactor: 1, configEntries: Object.entries(set).map(([name, value]) => ({ name, value })) }],
  });
  if (created !== true) fail(`createTopics answered ${created}`);

  const describe = async () => {
    const res = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] });
    const out = {};
    for (const e of res.resources[0].configEntries) out[e.configName] = e;
    return out;
  };
  let cfg = await describe();
  for (const [name, value] of Object.entries(set)) {
    const e = cfg[name];
    if (!e || e.configValue !== value || e.isDefault) fail(`${name}: described as ${JSON.stringify(e)}, want ${value} set on the topic`);
  }
  if (!cfg['retention.ms'] || !cfg['retention.ms'].isDefault) fail(`retention.ms: ${JSON.stringify(cfg['retention.ms'])}, want the default`);
  console.log('created and described');

  await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'cleanup.policy', value: 'compact,delete' }, { name: 'retention.ms', value: '3600000' }] }] });
  cfg = await describe();
  if (cfg['cleanup.policy'].configValue !== 'compact,delete' || cfg['retention.ms'].configValue !== '3600000') fail(`after alterConfigs: ${cfg['cleanup.policy'].configValue} ${cfg['retention.ms'].configValue}`);
  if (!cfg['min.insync.replicas'].isDefault) fail('alterConfigs replaces the whole set: min.insync.replicas should be back to its default');
  console.log('altered');

  try {
    await admin.createTopics({ topics: [{ topic: 'js-bad', configEntries: [{ name: 'segment.bites', value: '1' }] }] });
    fail('a topic with an unknown config was created');
  } catch (e) {
    const msg = JSON.stringify(e.errors || e.message);
    if (!/INVALID_CONFIG|segment\.bites|invalid/i.test(msg) && e.type !== 'INVALID_CONFIG') fail(`unknown config refused with ${msg}`);
  }
  console.log('unknown config refused');

  const topics = await admin.listTopics();
  if (!topics.includes(topic)) fail(`listTopics: ${topics}`);
  const meta = await admin.fetchTopicMetadata({ topics: ['__consumer_offsets'] });
  if (meta.topics.length !== 1 || meta.topics[0].partitions.length !== 50) fail(`__consumer_offsets metadata: ${JSON.stringify(meta.topics)}`);
  console.log('internal topic listed');
  await admin.disconnect();
  console.log('configs ok');
}

main().catch((e) => fail(e.stack || String(e)));
