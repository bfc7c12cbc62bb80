//! Smoke tests of the fixtures: JetStream and PostgreSQL are real and work.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use runfleet_tests::{TestCluster, TestDb, TestNats};

#[tokio::test]
async fn jetstream_publishes_deduplicates_and_delivers() {
    let nats = TestNats::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let stream = js
        .create_stream(stream::Config {
            name: "SMOKE".into(),
            subjects: vec!["smoke.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "smoke-1");
    let first = js
        .publish_with_headers("smoke.a", headers.clone(), "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let second = js
        .publish_with_headers("smoke.a", headers, "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate, "the same Nats-Msg-Id is deduplicated");

    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("smoke".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let message = batch.next().await.unwrap().unwrap();
    assert_eq!(&message.payload[..], b"hello");
    message.double_ack().await.unwrap();
    assert!(
        batch.next().await.is_none(),
        "one message was stored, not two"
    );
}

#[tokio::test]
async fn nats_restart_keeps_the_store() {
    let mut nats = TestNats::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    js.create_stream(stream::Config {
        name: "DURABLE".into(),
        subjects: vec!["durable.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("durable.x", "kept".into())
        .await
        .unwrap()
        .await
        .unwrap();

    nats.restart().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let mut stream = js.get_stream("DURABLE").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn postgres_round_trips_a_row_in_a_fresh_database() {
    let db = TestDb::create().await.unwrap();
    let (pg, _driver) = db.connect().await.unwrap();
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "each test gets an empty database");

    pg.batch_execute("CREATE TABLE smoke (id bigint PRIMARY KEY, body jsonb NOT NULL)")
        .await
        .unwrap();
    let body = serde_json::json!({"hello": "world"});
    pg.execute("INSERT INTO smoke VALUES ($1, $2)", &[&1_i64, &body])
        .await
        .unwrap();
    let row = pg
        .query_one("SELECT body FROM smoke WHERE id = $1", &[&1_i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, serde_json::Value>(0), body);
}

#[tokio::test]
async fn three_node_cluster_replicates_a_stream() {
    let mut cluster = TestCluster::start().await.unwrap();
    let js = jetstream::new(cluster.client().await.unwrap());
    let mut stream = js
        .create_stream(stream::Config {
            name: "REPLICATED".into(),
            subjects: vec!["replicated.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("replicated.x", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // The leader reports its two replicas once they have joined.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3);
        let replicas = info.cluster.as_ref().map_or(0, |c| c.replicas.len());
        if replicas == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a leader and two replicas, not {replicas}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Losing one node of three keeps the stream writable, once a new leader
    // is elected if the lost node led it: retry (same Nats-Msg-Id) meanwhile,
    // as producers do.
    cluster.nodes_mut()[2].kill();
    let client = async_nats::connect(cluster.nodes()[0].url()).await.unwrap();
    let js = jetstream::new(client);
    let publish = || async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "after-the-loss");
        js.publish_with_headers("replicated.x", headers, "two".into())
            .await?
            .await
    };
    let ack = backon::Retryable::retry(
        publish,
        backon::ConstantBuilder::default()
            .with_delay(Duration::from_millis(250))
            .with_max_times(80),
    )
    .await
    .unwrap();
    assert_eq!(ack.stream, "REPLICATED");
}
