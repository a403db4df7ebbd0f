//! A durable queue: a producer thread and a consumer thread share a store; the consumer keeps
//! its position in a small file, so a second run resumes exactly where the first stopped.
//!
//! ```sh
//! cargo run --example durable_queue -- /tmp/topiclog-queue
//! cargo run --example durable_queue -- /tmp/topiclog-queue   # resumes
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use topiclog::Store;
use topiclog::config::TopicConfig;
use topiclog::record::Record;

/// Jobs the producer adds per run.
const JOBS: i64 = 2_000;

/// The consumer's position: the next offset to process, kept in a small file replaced
/// atomically (write a temporary file, fsync, rename).
struct Position {
    path: PathBuf,
}

impl Position {
    fn load(&self) -> Result<Option<i64>, Box<dyn Error>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(text.trim().parse()?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, next: i64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, format!("{next}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn run(dir: &Path) -> Result<(), Box<dyn Error>> {
    let store = Arc::new(Store::open(dir)?);
    let jobs = match store.topic("jobs") {
        Ok(topic) => topic,
        Err(_) => store.create_topic("jobs", TopicConfig::new(1))?,
    };
    let queue = jobs.partition(0)?;
    let position = Position {
        path: dir.join("consumer.position"),
    };
    let start = match position.load()? {
        Some(next) => {
            println!("consumer resumes at offset {next}, where the last run stopped");
            next
        }
        None => {
            println!("first run: the consumer starts at offset 0");
            0
        }
    };
    let first_new = queue.next_offset();
    let produced = Arc::new(AtomicBool::new(false));

    let producer = {
        let (queue, produced) = (Arc::clone(&queue), Arc::clone(&produced));
        std::thread::spawn(move || -> topiclog::Result<()> {
            for i in 0..JOBS {
                let job = format!("job {} of this run", i + 1);
                queue.append(Record::new(job.as_bytes()))?;
            }
            queue.flush()?; // durable before the producer says it is done
            produced.store(true, Ordering::Release);
            Ok(())
        })
    };

    let consumer = {
        let (queue, produced) = (Arc::clone(&queue), Arc::clone(&produced));
        std::thread::spawn(move || -> Result<(i64, i64), String> {
            let mut next = start;
            let mut processed = 0;
            let mut reader = queue.read(next).map_err(|e| e.to_string())?;
            loop {
                let done = produced.load(Ordering::Acquire);
                let mut progressed = false;
                while let Some(record) = reader.next_view() {
                    let record = record.map_err(|e| e.to_string())?;
                    if record.offset() != next {
                        return Err(format!("expected offset {next}, got {}", record.offset()));
                    }
                    next += 1;
                    processed += 1;
                    progressed = true;
                }
                if progressed {
                    position.save(next).map_err(|e| e.to_string())?;
                }
                if done && !progressed {
                    return Ok((processed, next));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    producer.join().map_err(|_| "producer panicked")??;
    let (processed, next) = consumer.join().map_err(|_| "consumer panicked")??;
    println!(
        "producer appended {JOBS} jobs at offsets {first_new}..{}",
        first_new + JOBS
    );
    println!("consumer processed {processed} jobs, offsets {start}..{next}; position saved");
    if next != queue.next_offset() {
        return Err(format!(
            "consumer stopped at {next}, queue ends at {}",
            queue.next_offset()
        )
        .into());
    }
    store.close()?;
    Ok(())
}

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example durable_queue -- DIR");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(&dir)) {
        eprintln!("durable_queue: {e}");
        std::process::exit(1);
    }
}
