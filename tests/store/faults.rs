//! The durable receiver against an operator's bad day: a full disk, a file system remounted
//! read-only, bytes changed on disk after a clean stop, a sender that hangs up during a slow
//! commit. Nothing acknowledged is lost, nothing is handled twice, every refusal is a 503.
//!
//! The disk tests mount a real tmpfs of a few MiB, which takes root: without it they say so
//! and return (CI runs as root).

use crate::support::{self, stop};

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use airudder_webhook::model::TaskNotification;
use airudder_webhook::store::{
    Appended, Attempt, Envelope, NewRecord, Record, RecordId, RedbStore, RefusedBody, Store,
    StoreError, StoreErrorKind,
};
use airudder_webhook::{Delivery, Receiver};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The example with its own task id, and `pad` bytes more in a variable.
fn notification(task: &str, pad: usize) -> Vec<u8> {
    let mut body = support::example_value();
    body["task_id"] = json!(task);
    body["details"][0]["variables"]["pad"] = json!("p".repeat(pad));
    serde_json::to_vec(&body).unwrap()
}

async fn post(receiver: &Receiver, body: Vec<u8>) -> StatusCode {
    let response = receiver.clone().oneshot(support::post(body)).await.unwrap();
    response.status()
}

/// How often each task was handled, and a gate that holds the handler of task `gated`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, usize>>>);

impl Seen {
    fn count(&self, task: &str) -> usize {
        self.0.lock().unwrap().get(task).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    async fn wait_for(&self, task: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(task) == 0 {
            assert!(Instant::now() < deadline, "{task} was never handled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn receiver(store: impl Store, seen: &Seen, gate: Option<Arc<Semaphore>>) -> Receiver {
    let seen = seen.clone();
    Receiver::builder(move |delivery: Delivery<TaskNotification>| {
        let (seen, gate) = (seen.clone(), gate.clone());
        async move {
            if let (Some(gate), "gated") = (&gate, delivery.task_id.as_str()) {
                let _ = gate.acquire().await;
            }
            *seen
                .0
                .lock()
                .unwrap()
                .entry(delivery.task_id.to_string())
                .or_default() += 1;
            Ok::<_, Infallible>(())
        }
    })
    .allow_unauthenticated()
    .durable(store)
    .build()
    .unwrap()
}

/// A tmpfs of `mib` MiB mounted for one test on a temporary directory: unmounted when
/// dropped, then the directory removed.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(name: &str, mib: u32) -> Option<Self> {
        let root = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!("airudder-fault-{name}-"))
            .tempdir()
            .unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(temp.path())
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mount a tmpfs at {}",
            temp.path().display()
        );
        Some(Self(temp))
    }

    /// Fills the file system to the last byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..1]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Posts `body` until it is answered 200; returns how long that took. Every other answer must
/// be a 503 (the sender retries it).
async fn post_until_accepted(receiver: &Receiver, body: &[u8], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match post(receiver, body.to_vec()).await {
            StatusCode::OK => return started.elapsed(),
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("a store fault must answer 503, not {other}"),
        }
        assert!(started.elapsed() < within, "not accepted within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shared scenario: a notification is being handled when the disk fails; its "done" mark
/// cannot be written; the disk comes back; the store reopens by itself; after a restart
/// nothing is handled a second time.
async fn survives(on: &std::path::Path, break_disk: impl FnOnce(), mend_disk: impl FnOnce()) {
    let dir = on.join("store");
    let seen = Seen::default();
    let gate = Arc::new(Semaphore::new(0));
    let store = RedbStore::open(&dir).unwrap();
    let first = receiver(store.clone(), &seen, Some(Arc::clone(&gate)));
    assert_eq!(
        post(&first, notification("before", 0)).await,
        StatusCode::OK
    );
    seen.wait_for("before").await;
    assert_eq!(post(&first, notification("gated", 0)).await, StatusCode::OK);

    break_disk();
    // A notification that needs new pages cannot be stored: 503, and the store is down.
    assert_eq!(
        post(&first, notification("during", 512 * 1024)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Handled while the store is down: its "done" mark waits.
    gate.add_permits(1);
    seen.wait_for("gated").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        post(&first, notification("during", 512 * 1024)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "still down"
    );
    assert!(first.stats().answers().get("store_unavailable") >= 2);

    mend_disk();
    let recovered = post_until_accepted(
        &first,
        &notification("during", 512 * 1024),
        Duration::from_secs(15),
    )
    .await;
    eprintln!(
        "accepted again {} ms after the disk came back",
        recovered.as_millis()
    );
    assert!(store.recoveries() >= 1);
    assert!(!store.is_recovering());
    seen.wait_for("during").await;
    // The completer writes the marks it kept within its next second: idle once it has.
    tokio::time::timeout(Duration::from_secs(10), first.idle())
        .await
        .expect("the kept marks written");
    stop(&first).await;
    drop((first, store));

    // After a restart nothing already handled comes again.
    let after = Seen::default();
    let second = receiver(RedbStore::open(&dir).unwrap(), &after, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(after.total(), 0, "handled a second time after the restart");
    stop(&second).await;
    for task in ["before", "gated", "during"] {
        assert_eq!(seen.count(task), 1, "{task}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_then_recovers_without_a_restart_and_handles_nothing_twice() {
    let Some(fs) = Tmpfs::mount("full", 3) else {
        return;
    };
    let filler = Mutex::new(None);
    survives(
        fs.0.path(),
        || *filler.lock().unwrap() = Some(fs.fill()),
        || std::fs::remove_file(filler.lock().unwrap().take().unwrap()).unwrap(),
    )
    .await;
}

/// The names in a store's folder of refused bodies, sorted.
fn refused_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("rejected"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_on_a_full_disk_is_answered_unavailable_and_leaves_no_header_without_its_file()
 {
    let Some(fs) = Tmpfs::mount("full-refused", 3) else {
        return;
    };
    let dir = fs.0.path().join("store");
    let store = RedbStore::open(&dir).unwrap();
    let refuse = |len: usize| {
        let envelope = Envelope::new(SystemTime::now(), None, Vec::new());
        store.reject(
            400,
            "malformed JSON".into(),
            envelope,
            Bytes::from(vec![b'x'; len]),
        )
    };
    let kept = refuse(4096).await.unwrap();

    let filler = fs.fill();
    for _ in 0..3 {
        let err = refuse(256 * 1024).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    }
    // Nothing half written stays: no header, no file, no temporary file.
    let listed = store.rejected_page(0, 10).await.unwrap();
    assert_eq!(listed.iter().map(|one| one.id).collect::<Vec<_>>(), [kept]);
    assert_eq!(refused_files(&dir), [kept.to_string()]);

    std::fs::remove_file(filler).unwrap();
    let next = refuse(256 * 1024).await.unwrap();
    drop(store);
    let store = RedbStore::open(&dir).unwrap();
    let all = store.rejected().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|one| (one.id, one.body.len()))
            .collect::<Vec<_>>(),
        [(kept, 4096), (next, 256 * 1024)]
    );
}

/// An ext4 file system in a file, on a loop device, that can fail as a dying disk does.
struct FailingDisk {
    image: PathBuf,
    dir: PathBuf,
    /// Holds both, removed after the unmount.
    _temp: tempfile::TempDir,
}

impl FailingDisk {
    fn mount(name: &str) -> Option<Self> {
        let root = std::process::Command::new("id").arg("-u").output().ok()?;
        let tools = ["mkfs.ext4", "losetup", "python3"].iter().all(|tool| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|out| out.status.success())
        });
        if String::from_utf8_lossy(&root.stdout).trim() != "0" || !tools {
            eprintln!("skipped: needs root, mkfs.ext4, losetup and python3");
            return None;
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!("airudder-disk-{name}-"))
            .tempdir()
            .unwrap();
        let (image, dir) = (temp.path().join("disk.img"), temp.path().join("mnt"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(32 * 1024 * 1024).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let disk = Self {
            image,
            dir,
            _temp: temp,
        };
        disk.attach();
        Some(disk)
    }

    fn attach(&self) {
        run(
            "mount",
            &[
                "-o",
                "loop",
                self.image.to_str().unwrap(),
                self.dir.to_str().unwrap(),
            ],
        );
    }

    /// What the kernel does to a disk that fails: the file system shuts down and every write
    /// fails (`EXT4_IOC_SHUTDOWN`, from Python since this crate forbids `unsafe`).
    fn fail(&self) {
        let script = format!(
            "import fcntl, os; fd = os.open({:?}, os.O_RDONLY); fcntl.ioctl(fd, 0x8004587D, bytes(4))",
            self.dir.to_str().unwrap()
        );
        run("python3", &["-c", &script]);
    }

    /// The operator's repair: the file system is detached (the store still holds its file, so
    /// lazily) and mounted again in the same place.
    fn remount(&self) {
        run("umount", &["-l", self.dir.to_str().unwrap()]);
        self.attach();
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_answers_503_then_recovers_once_mounted_again_without_a_restart() {
    let Some(disk) = FailingDisk::mount("eio") else {
        return;
    };
    survives(&disk.dir, || disk.fail(), || disk.remount()).await;
}

#[tokio::test]
async fn a_record_changed_on_disk_after_a_clean_stop_is_set_aside_never_handled() {
    let dir = support::process::DataDir::new();
    // Two notifications stay stored: their handler never ends before the stop.
    let never = Arc::new(Semaphore::new(0));
    let held = Seen::default();
    {
        let seen = held.clone();
        let receiver = Receiver::builder(move |_: Delivery<TaskNotification>| {
            let (never, _seen) = (Arc::clone(&never), seen.clone());
            async move {
                let _ = never.acquire().await;
                Ok::<_, Infallible>(())
            }
        })
        .allow_unauthenticated()
        .durable(RedbStore::open(&dir.0).unwrap())
        .build()
        .unwrap();
        for task in ["intact-task", "flipped-task"] {
            assert_eq!(post(&receiver, notification(task, 0)).await, StatusCode::OK);
        }
        receiver
            .shutdown_handle()
            .shutdown(Duration::from_millis(200))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // One bit of the second notification's task id changes on disk, wherever it was written.
    let path = dir.0.join("airudder.redb");
    let mut file = std::fs::read(&path).unwrap();
    let needle = b"flipped-task";
    let mut flipped = 0;
    for at in 0..file.len().saturating_sub(needle.len()) {
        if &file[at..at + needle.len()] == needle {
            file[at] ^= 0x01; // 'f' becomes 'g'
            flipped += 1;
        }
    }
    assert!(flipped > 0, "the task id is in the file");
    std::fs::write(&path, &file).unwrap();

    let store = RedbStore::open(&dir.0).unwrap();
    assert_eq!(store.quarantined(), 1, "found when the store opened");
    let rejected = store.rejected().await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].reason.contains("corrupt stored record 2")
            && rejected[0].reason.contains("checksum"),
        "named by id, with why: {}",
        rejected[0].reason
    );
    assert!(
        rejected[0]
            .body
            .windows(needle.len())
            .any(|w| w == b"glipped-task"),
        "kept with its raw bytes"
    );
    let seen = Seen::default();
    let receiver = receiver(store, &seen, None);
    seen.wait_for("intact-task").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.total(),
        1,
        "the changed record never reaches the handler"
    );
    stop(&receiver).await;
}

/// A store whose appends and kept refused bodies take a second: a slow disk.
#[derive(Clone)]
struct Slow(RedbStore);

impl Store for Slow {
    async fn append(&self, record: NewRecord) -> Result<Appended, StoreError> {
        let appended = self.0.append(record).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        appended
    }
    async fn begin_attempt(&self, id: RecordId) -> Result<u32, StoreError> {
        self.0.begin_attempt(id).await
    }
    async fn complete(&self, id: RecordId, attempt: Attempt) -> Result<(), StoreError> {
        self.0.complete(id, attempt).await
    }
    async fn fail(
        &self,
        id: RecordId,
        attempt: Attempt,
        due: SystemTime,
    ) -> Result<(), StoreError> {
        self.0.fail(id, attempt, due).await
    }
    async fn dead_letter(&self, id: RecordId, attempt: Attempt) -> Result<(), StoreError> {
        self.0.dead_letter(id, attempt).await
    }
    async fn claim(&self, kind: &str, max: usize) -> Result<Vec<Record>, StoreError> {
        self.0.claim(kind, max).await
    }
    async fn make_due(&self, id: RecordId) -> Result<bool, StoreError> {
        self.0.make_due(id).await
    }
    async fn purge(&self, id: RecordId) -> Result<bool, StoreError> {
        self.0.purge(id).await
    }
    async fn set_paused(&self, kind: &str, paused: bool) -> Result<(), StoreError> {
        self.0.set_paused(kind, paused).await
    }
    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        self.0.paused().await
    }
    async fn pending(&self) -> Result<Vec<Record>, StoreError> {
        self.0.pending().await
    }
    async fn dead_letters(&self) -> Result<Vec<Record>, StoreError> {
        self.0.dead_letters().await
    }
    async fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        self.0.get(id).await
    }
    async fn replay(&self, id: RecordId) -> Result<Record, StoreError> {
        self.0.replay(id).await
    }
    async fn reject(
        &self,
        status: u16,
        reason: String,
        envelope: Envelope,
        body: Bytes,
    ) -> Result<RecordId, StoreError> {
        let kept = self.0.reject(status, reason, envelope, body).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        kept
    }
    async fn rejected(&self) -> Result<Vec<RefusedBody>, StoreError> {
        self.0.rejected().await
    }
    async fn remove_rejected(&self, id: RecordId) -> Result<(), StoreError> {
        self.0.remove_rejected(id).await
    }
    async fn prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        self.0.prune(before).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_waiting_for_a_slow_disk_count_as_bytes_in_flight() {
    let dir = support::process::DataDir::new();
    let store = RedbStore::open(&dir.0).unwrap();
    let body = {
        let mut body = br#"{"task_id": ""#.to_vec();
        body.resize(100_000, b'x');
        body
    };
    let receiver =
        Receiver::builder(|_: Delivery<TaskNotification>| async { Ok::<_, Infallible>(()) })
            .allow_unauthenticated()
            .body_limit(200_000)
            .max_bytes_in_flight(250_000)
            .durable(Slow(store.clone()))
            .build()
            .unwrap();
    // Two are answered 400 and wait for the disk with their bytes; the third finds no room.
    assert_eq!(post(&receiver, body.clone()).await, StatusCode::BAD_REQUEST);
    assert_eq!(post(&receiver, body.clone()).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&receiver, body.clone()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Once the disk has them, there is room again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(post(&receiver, body).await, StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.rejected_page(0, 10).await.unwrap().len(), 3);
    stop(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_hangs_up_during_a_slow_commit_still_has_its_notification_handled() {
    let dir = support::process::DataDir::new();
    let seen = Seen::default();
    let receiver = receiver(Slow(RedbStore::open(&dir.0).unwrap()), &seen, None);
    let tasks: Vec<String> = (0..10).map(|i| format!("hung-up-{i}")).collect();
    // Each sender gives up after 0.4 s, while its notification is being committed.
    let gave_up = tasks.iter().map(|task| {
        let receiver = receiver.clone();
        let body = notification(task, 0);
        async move {
            tokio::time::timeout(Duration::from_millis(400), post(&receiver, body))
                .await
                .is_err()
        }
    });
    let gave_up = futures_join(gave_up.collect()).await;
    assert!(
        gave_up.iter().all(|g| *g),
        "every sender hung up before its answer"
    );
    for task in &tasks {
        seen.wait_for(task).await;
    }
    // The senders' retries are duplicates of notifications that were handled: 200, once.
    for task in &tasks {
        assert_eq!(post(&receiver, notification(task, 0)).await, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.total(), tasks.len(), "each handled once");
    assert_eq!(
        receiver.stats().answers().get("duplicate"),
        tasks.len() as u64
    );
    stop(&receiver).await;
}

/// Runs the futures at once and collects their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
