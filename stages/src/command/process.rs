//! A running `command` program and the threads that feed and read it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

use super::{parse_answer, request_line};
use crate::data::Document;
use crate::error::{Error, Result};
use crate::stage::Stage;

/// How much of the program's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// What to run, as `[section] kind = "command"` configures it.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// The section it was configured in, for error messages.
    pub section: String,
    /// Program and arguments; the program is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Directory it runs in (the pipeline file's).
    pub dir: PathBuf,
    /// Documents sent before an answer is awaited.
    pub max_in_flight: usize,
    /// How long to wait for an answer (or the exit) before giving up.
    pub timeout: Duration,
}

/// What the stdout reader thread hands over.
enum Output {
    Line(String),
    Eof,
    Failed(std::io::Error),
}

/// The stage: sends each document to the program and emits its answers in
/// order. Any misbehaviour of the program is an error naming the program,
/// the document and the program's stderr, after which the program is
/// killed; the pipeline then stops as for any stage error.
pub struct CommandStage {
    spec: CommandSpec,
    child: Child,
    to_child: Option<Sender<String>>,
    from_child: Receiver<Output>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
    /// Documents sent and not yet answered, oldest first.
    in_flight: VecDeque<Document>,
    answered: u64,
    exited: bool,
}

impl CommandStage {
    pub fn start(spec: &CommandSpec) -> Result<CommandStage> {
        let mut child = Command::new(&spec.argv[0])
            .args(&spec.argv[1..])
            .current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::config(format!(
                    "[{}] cannot start command {:?}: {e}",
                    spec.section, spec.argv
                ))
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        // Unbounded, because `max_in_flight` already bounds what is queued.
        let (to_child, requests) = unbounded::<String>();
        let writer = std::thread::spawn(move || {
            let mut w = std::io::BufWriter::new(stdin);
            while let Ok(line) = requests.recv() {
                if w.write_all(line.as_bytes()).is_err() {
                    return; // the program is gone; the reader reports it
                }
                if requests.is_empty() && w.flush().is_err() {
                    return;
                }
            }
            // Dropping `w` closes the program's stdin: no more documents.
        });

        let (answers, from_child) = bounded(spec.max_in_flight.max(1));
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                let out = match r.read_line(&mut line) {
                    Ok(0) => Output::Eof,
                    Ok(_) => Output::Line(line),
                    Err(e) => Output::Failed(e),
                };
                let last = !matches!(out, Output::Line(_));
                if answers.send(out).is_err() || last {
                    return;
                }
            }
        });

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = bounded(1);
        let tail = stderr.clone();
        let errors = std::thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap();
                t.extend_from_slice(&buf[..n]);
                if t.len() > STDERR_TAIL {
                    let cut = t.len() - STDERR_TAIL;
                    t.drain(..cut);
                }
            }
            let _ = done_tx.send(());
        });

        Ok(CommandStage {
            spec: spec.clone(),
            child,
            to_child: Some(to_child),
            from_child,
            stderr,
            stderr_done,
            threads: vec![writer, reader, errors],
            in_flight: VecDeque::new(),
            answered: 0,
            exited: false,
        })
    }

    /// Kills the program and builds the error: what went wrong, the
    /// document it was answering, and its stderr.
    fn fail(&mut self, what: String) -> Error {
        let status = self.stop();
        let doc = match self.in_flight.front() {
            Some(d) => format!(" at document {} ({})", d.index, d.origin),
            None => String::new(),
        };
        // The stderr thread ends once the program is gone; wait briefly so
        // its last words are in the message.
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        let tail = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        let tail = tail.trim_end();
        let stderr = if tail.is_empty() {
            " (nothing on stderr)".to_string()
        } else {
            format!("; its stderr:\n{tail}")
        };
        Error::data(format!(
            "[{}] command {:?}{doc}: {what}{status}{stderr}",
            self.spec.section, self.spec.argv
        ))
    }

    /// Ends the program if it still runs; says how it ended.
    fn stop(&mut self) -> String {
        self.to_child = None;
        if !self.exited {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
        }
        self.exited = true;
        match self.child.wait() {
            Ok(s) => format!(" (the program {s})"),
            Err(_) => String::new(),
        }
    }

    /// Waits for the answer to the oldest document in flight.
    fn receive(&mut self, emit: &mut dyn FnMut(Document)) -> Result<()> {
        let out = match self.from_child.recv_timeout(self.spec.timeout) {
            Ok(out) => out,
            Err(RecvTimeoutError::Timeout) => {
                let secs = self.spec.timeout.as_secs_f64();
                return Err(self.fail(format!("no answer within {secs}s (timeout_s); killed it")));
            }
            Err(RecvTimeoutError::Disconnected) => Output::Eof,
        };
        match out {
            Output::Line(line) => {
                let mut doc = self.in_flight.pop_front().expect("a document in flight");
                match parse_answer(&line) {
                    Ok(lines) => {
                        self.answered += 1;
                        if !lines.is_empty() {
                            doc.lines = lines;
                            emit(doc);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        self.in_flight.push_front(doc);
                        let shown: String = line.trim_end().chars().take(200).collect();
                        Err(self.fail(format!(
                            "answer line {} is malformed: {e}: {shown:?}",
                            self.answered + 1
                        )))
                    }
                }
            }
            Output::Eof => {
                let n = self.answered;
                let sent = n + self.in_flight.len() as u64;
                Err(self.fail(format!(
                    "closed its output after answering {n} of {sent} documents"
                )))
            }
            Output::Failed(e) => Err(self.fail(format!("cannot read its output: {e}"))),
        }
    }
}

impl Stage for CommandStage {
    type In = Document;
    type Out = Document;

    fn push(&mut self, doc: Document, emit: &mut dyn FnMut(Document)) -> Result<()> {
        while self.in_flight.len() >= self.spec.max_in_flight {
            self.receive(emit)?;
        }
        let line = request_line(&doc);
        self.in_flight.push_back(doc);
        let sent = self.to_child.as_ref().is_some_and(|t| t.send(line).is_ok());
        if !sent {
            return Err(self.fail("is not accepting documents".into()));
        }
        Ok(())
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Document)) -> Result<()> {
        // Closing stdin tells the program there is nothing more.
        self.to_child = None;
        while !self.in_flight.is_empty() {
            self.receive(emit)?;
        }
        match self.from_child.recv_timeout(self.spec.timeout) {
            Ok(Output::Eof) | Err(RecvTimeoutError::Disconnected) => {}
            Ok(Output::Line(line)) => {
                let shown: String = line.trim_end().chars().take(200).collect();
                return Err(self.fail(format!(
                    "printed more answers than it was sent documents ({}): {shown:?}",
                    self.answered
                )));
            }
            Ok(Output::Failed(e)) => return Err(self.fail(format!("cannot read its output: {e}"))),
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.fail(format!(
                    "did not exit within {}s of its input closing",
                    self.spec.timeout.as_secs_f64()
                )))
            }
        }
        let status = self.child.wait().map_err(|e| self.fail(format!("{e}")))?;
        self.exited = true;
        if !status.success() {
            return Err(self.fail("failed after answering every document".into()));
        }
        Ok(())
    }
}

impl Drop for CommandStage {
    fn drop(&mut self) {
        self.stop();
        // The threads end once the program's pipes close. They are not
        // joined: a grandchild the program left behind (`sh -c "… &"`) may
        // hold the pipes open, and that must not hang the pipeline.
        self.threads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::run_all;

    fn spec(script: &str, timeout_ms: u64) -> CommandSpec {
        CommandSpec {
            section: "clean".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            dir: std::env::temp_dir(),
            max_in_flight: 2,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn docs(n: u64) -> Vec<Document> {
        (0..n)
            .map(|index| Document {
                index,
                origin: format!("c.txt:{}", index + 1),
                lines: vec![format!("line {index}")],
            })
            .collect()
    }

    #[test]
    fn answers_replace_lines_and_empty_answers_drop() {
        // Answers every other document with two lines, drops the rest.
        let script = r#"n=0; while read -r l; do
            if [ $((n % 2)) = 0 ]; then echo "{\"lines\": [\"a$n\", \"b\"]}"; else echo '{"lines": []}'; fi
            n=$((n+1)); done"#;
        let mut s = CommandStage::start(&spec(script, 5000)).unwrap();
        let out = run_all(&mut s, docs(5)).unwrap();
        let got: Vec<(u64, Vec<String>)> = out.into_iter().map(|d| (d.index, d.lines)).collect();
        assert_eq!(
            got,
            vec![
                (0, vec!["a0".into(), "b".into()]),
                (2, vec!["a2".into(), "b".into()]),
                (4, vec!["a4".into(), "b".into()]),
            ]
        );
    }

    #[test]
    fn a_crash_names_the_document_and_shows_stderr() {
        let script =
            r#"read -r l; echo '{"lines": ["x"]}'; read -r l; echo "boom: bad input" >&2; exit 3"#;
        let mut s = CommandStage::start(&spec(script, 5000)).unwrap();
        let err = run_all(&mut s, docs(4)).unwrap_err().to_string();
        assert!(err.contains("[clean] command"), "{err}");
        assert!(err.contains("after answering 1 of"), "{err}");
        assert!(err.contains("document 1 (c.txt:2)"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("boom: bad input"), "{err}");
    }

    #[test]
    fn a_hang_times_out_and_is_killed() {
        // 2 s: long enough for the shell to start and print on a loaded
        // machine, far below the 30 s it would hang.
        let mut s = CommandStage::start(&spec("echo started >&2; sleep 30", 2000)).unwrap();
        let t0 = std::time::Instant::now();
        let err = run_all(&mut s, docs(3)).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(15));
        assert!(err.contains("no answer within 2s"), "{err}");
        assert!(err.contains("started"), "{err}");
    }

    #[test]
    fn malformed_answers_are_quoted() {
        let mut s =
            CommandStage::start(&spec("while read -r l; do echo 'oops {'; done", 5000)).unwrap();
        let err = run_all(&mut s, docs(2)).unwrap_err().to_string();
        assert!(err.contains("answer line 1 is malformed"), "{err}");
        assert!(err.contains("oops {"), "{err}");
        assert!(err.contains("document 0 (c.txt:1)"), "{err}");
    }

    #[test]
    fn a_missing_program_is_named() {
        let mut bad = spec("", 100);
        bad.argv = vec!["/no/such/cleaner".into()];
        let err = CommandStage::start(&bad).err().unwrap().to_string();
        assert!(err.contains("/no/such/cleaner"), "{err}");
    }
}
