//! topiclog from async code (tokio): the library is synchronous on purpose (an append waits for
//! an fsync, a poll waits for records), so async code hands it to threads that may block:
//!
//! - **Appends** go through `tokio::task::spawn_blocking`: the fsync never stalls the runtime's
//!   worker threads, and concurrent appends still share fsyncs (group commit).
//! - **Consuming** runs on one dedicated thread that owns the `Consumer` (one thread polls a
//!   consumer at a time, as in Kafka) and forwards records into a bounded `tokio::sync::mpsc`
//!   channel; async tasks `.await` the channel. The bound is the back-pressure: when the async
//!   side falls behind, the polling thread waits instead of buffering without limit. A `poll`
//!   wakes as soon as an append lands, so the bridge adds no polling delay.
//!
//! ```sh
//! cargo run --example tokio_bridge -- /tmp/topiclog-tokio
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use topiclog::Store;
use topiclog::config::TopicConfig;
use topiclog::config::{ConsumerConfig, OffsetReset};
use topiclog::record::Record;

const RECORDS: usize = 1_000;

/// A record as the async side receives it.
#[derive(Debug)]
struct Message {
    partition: u32,
    offset: i64,
    value: Vec<u8>,
}

/// Starts the polling thread: it owns the consumer and forwards each record, until `stop` is
/// set or the receiver is dropped.
fn consume_into_channel(
    store: &Store,
    stop: Arc<AtomicBool>,
) -> Result<(mpsc::Receiver<Message>, std::thread::JoinHandle<()>), Box<dyn Error>> {
    let config = ConsumerConfig::builder()
        .group_id("async-workers")
        .auto_offset_reset(OffsetReset::Earliest)
        .build()?;
    let mut consumer = store.consumer(config)?;
    consumer.subscribe(&["events"])?;
    let (tx, rx) = mpsc::channel(256);
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let records = match consumer.poll(Duration::from_millis(100)) {
                Ok(records) => records,
                Err(e) => {
                    eprintln!("poll failed: {e}");
                    return;
                }
            };
            for r in records {
                let message = Message {
                    partition: r.partition(),
                    offset: r.record().offset(),
                    value: r.record().value().unwrap_or_default().to_vec(),
                };
                // Waits while the channel is full; fails once the async side is gone.
                if tx.blocking_send(message).is_err() {
                    return;
                }
            }
        }
        // Auto-commit commits what was polled when the consumer closes.
        let _ = consumer.close();
    });
    Ok((rx, handle))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("topiclog-tokio"));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Store::open(&dir)?);
    let topic = store.create_topic("events", TopicConfig::new(3))?;

    let stop = Arc::new(AtomicBool::new(false));
    let (mut rx, poller) = consume_into_channel(&store, Arc::clone(&stop))?;

    // Many concurrent async producers, each append on the blocking pool.
    let mut producers = Vec::new();
    for task in 0..10 {
        let topic = Arc::clone(&topic);
        producers.push(tokio::spawn(async move {
            for i in 0..RECORDS / 10 {
                let topic = Arc::clone(&topic);
                let (key, value) = (format!("task {task}"), format!("record {i}"));
                tokio::task::spawn_blocking(move || {
                    topic.append(Record::keyed(key.as_bytes(), value.as_bytes()))
                })
                .await??;
            }
            Ok::<(), Box<dyn Error + Send + Sync>>(())
        }));
    }
    for producer in producers {
        producer.await?.map_err(|e| e as Box<dyn Error>)?;
    }

    let mut received = 0;
    while received < RECORDS {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(message)) => {
                received += 1;
                if received % 250 == 0 {
                    println!(
                        "received {received}: partition {} offset {} {:?}",
                        message.partition,
                        message.offset,
                        String::from_utf8_lossy(&message.value)
                    );
                }
            }
            Ok(None) => return Err("the polling thread stopped".into()),
            Err(_) => return Err("no record for 10 s".into()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    poller.join().map_err(|_| "the polling thread panicked")?;
    println!("all {RECORDS} records appended and received through async tasks");
    Ok(())
}
