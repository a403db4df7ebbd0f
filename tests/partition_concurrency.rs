//! Many threads append to one partition while others read it: offsets stay contiguous, every
//! record is stored exactly once with its own content, readers never see a half-written batch
//! (each record they see is complete and correct, in offset order, with no gap), and readers
//! follow the log across segment rolls and write-buffer flushes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use topiclog::config::LogConfig;
use topiclog::record::{Header, Record};
use topiclog::{LogRecord, Partition};

const WRITERS: u64 = 4;
const PER_WRITER: u64 = 3_000;

/// Value for record `seq` of writer `w`: its identity repeated to a length that varies.
fn payload(w: u64, seq: u64) -> Vec<u8> {
    let id = format!("{w}:{seq};");
    id.repeat(1 + (seq % 7) as usize).into_bytes()
}

fn check(record: &LogRecord) -> (u64, u64) {
    let key = record.key().expect("key");
    let w = u64::from(key[0]);
    let seq = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"));
    assert_eq!(
        record.value(),
        Some(&payload(w, seq)[..]),
        "record content intact"
    );
    let headers: Vec<_> = record.headers().collect();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].value, Some(key));
    (w, seq)
}

#[test]
fn concurrent_appenders_and_tailing_readers() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(64 * 1024)
        .index_interval_bytes(512)
        .write_buffer_bytes(8 * 1024)
        .build()
        .unwrap();
    let log = Arc::new(Partition::open(dir.path(), config).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            thread::spawn(move || {
                let mut reader = log.read(0).unwrap();
                let mut next = 0i64;
                let mut last_seq = vec![None::<u64>; WRITERS as usize];
                loop {
                    let finished = done.load(Ordering::Acquire);
                    for record in reader.by_ref() {
                        let record = record.unwrap();
                        assert_eq!(record.offset(), next, "no gap, no repeat");
                        let (w, seq) = check(&record);
                        if let Some(prev) = last_seq[w as usize] {
                            assert!(seq > prev, "a writer's records stay in its order");
                        }
                        last_seq[w as usize] = Some(seq);
                        next += 1;
                    }
                    if finished {
                        return next;
                    }
                    thread::yield_now();
                }
            })
        })
        .collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut offsets = Vec::new();
                let mut seq = 0;
                while seq < PER_WRITER {
                    // Alternate single appends and small batches.
                    let n = if seq % 3 == 0 {
                        1
                    } else {
                        (seq % 5 + 1).min(PER_WRITER - seq)
                    };
                    let keys: Vec<Vec<u8>> = (seq..seq + n)
                        .map(|s| [&[w as u8][..], &s.to_be_bytes()].concat())
                        .collect();
                    let values: Vec<Vec<u8>> = (seq..seq + n).map(|s| payload(w, s)).collect();
                    let headers: Vec<[Header<'_>; 1]> =
                        keys.iter().map(|k| [Header::new(b"id", Some(k))]).collect();
                    let records: Vec<Record<'_>> = (0..n as usize)
                        .map(|i| Record::keyed(&keys[i], &values[i]).with_headers(&headers[i]))
                        .collect();
                    let info = log.append_batch(&records).unwrap();
                    assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
                    offsets.extend(info.offsets());
                    seq += n;
                }
                offsets
            })
        })
        .collect();

    let mut all: Vec<i64> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    done.store(true, Ordering::Release);
    let total = (WRITERS * PER_WRITER) as i64;
    all.sort_unstable();
    assert_eq!(
        all,
        (0..total).collect::<Vec<_>>(),
        "every offset given out once"
    );
    for reader in readers {
        assert_eq!(reader.join().unwrap(), total, "readers saw every record");
    }
    assert!(
        log.segment_base_offsets().len() > 3,
        "the log rolled under the readers"
    );

    // Everything is there after a crash-style reopen too.
    drop(log);
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let mut seen = vec![0u32; (WRITERS * PER_WRITER) as usize];
    for record in log.read(0).unwrap() {
        let (w, seq) = check(&record.unwrap());
        seen[(w * PER_WRITER + seq) as usize] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "each record stored exactly once"
    );
}

#[test]
fn random_readers_alongside_an_appender() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::builder()
        .segment_bytes(32 * 1024)
        .write_buffer_bytes(4 * 1024)
        .build()
        .unwrap();
    let log = Arc::new(Partition::open(dir.path(), config).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            thread::spawn(move || {
                let mut state = 0x2545_f491_4f6c_dd1du64 ^ t;
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads < 100 {
                    let end = log.next_offset();
                    if end == 0 {
                        continue;
                    }
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let offset = (state % end as u64) as i64;
                    let record = log
                        .read(offset)
                        .unwrap()
                        .next()
                        .expect("published record")
                        .unwrap();
                    assert_eq!(record.offset(), offset);
                    assert_eq!(check(&record), (0, offset as u64));
                    reads += 1;
                }
            })
        })
        .collect();
    for seq in 0..5_000u64 {
        let key = [&[0u8][..], &seq.to_be_bytes()].concat();
        let value = payload(0, seq);
        log.append(Record::keyed(&key, &value).with_headers(&[Header::new(b"id", Some(&key))]))
            .unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
}
