//! Task files (`nezha finetune <task> --config task.toml`): the same
//! settings as the flags, paths relative to the file, flags overriding the
//! file, and mistakes reported as file:line:column with the key.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use nezha_finetune::checkpoint::Format;
use nezha_finetune::classify::Layout;
use nezha_finetune::cli::{from_task_file, run, FinetuneCommand};
use nezha_finetune::task_file::{load, task_of};

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    task: FinetuneCommand,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn the_bundled_example_parses_with_its_paths_beside_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/sentiment.toml");
    let t = load(&path, "classify").unwrap();
    assert_eq!(t.task_name, Some(Layout::Tsv));
    assert_eq!(t.file.learning_rate, Some(5e-4));
    assert_eq!(t.file.num_train_epochs, Some(8.0));
    let vocab = t.path(&t.file.vocab_file).unwrap();
    assert!(
        vocab.exists(),
        "{} is relative to the file",
        vocab.display()
    );
    // The file is for classify; as an ner file its classify keys are refused.
    let e = err(load(&path, "ner"));
    assert!(e.contains("sentiment.toml:") && e.contains("[ner]"), "{e}");
}

#[test]
fn mistakes_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let at = |src: &str, task: &str| err(load(&write(d, "t.toml", src), task));

    let e = at(
        "[classify]\ndata_dir = \"d\"\nlerning_rate = 1e-4\n",
        "classify",
    );
    assert!(
        e.starts_with(&format!("{}:3:", d.join("t.toml").display())),
        "{e}"
    );
    assert!(e.contains("lerning_rate"), "{e}");

    let e = at("[classify]\n\nnum_train_epochs = \"three\"\n", "classify");
    assert!(
        e.contains("t.toml:3:") && e.contains("num_train_epochs"),
        "{e}"
    );

    let e = at("[classify]\ndoc_stride = 64\n", "classify");
    assert!(
        e.contains("t.toml:2:") && e.contains("doc_stride") && e.contains("mrc"),
        "{e}"
    );
    let e = at("[mrc]\ntext_b = \"q\"\n", "mrc");
    assert!(e.contains("t.toml:2:") && e.contains("text_b"), "{e}");

    let e = at("[classify]\ntask_name = \"mnli\"\n", "classify");
    assert!(e.contains("t.toml:2:") && e.contains("task_name"), "{e}");
    let e = at("[classify]\ninit_format = \"onnx\"\n", "classify");
    assert!(e.contains("t.toml:2:") && e.contains("init_format"), "{e}");

    let e = at("[ner]\ndata_dir = \"d\"\n", "classify");
    assert!(e.contains("t.toml:1:") && e.contains("[classify]"), "{e}");
    let e = at("learning_rate = 1e-4\n", "classify");
    assert!(
        e.contains("t.toml:1:") && e.contains("learning_rate"),
        "{e}"
    );
    let e = at("", "classify");
    assert!(e.contains("no [classify] table"), "{e}");
    let e = at("[classify\n", "classify");
    assert!(e.contains("t.toml:1:"), "{e}");
    let e = err(load(&d.join("absent.toml"), "classify"));
    assert!(e.contains("absent.toml"), "{e}");
}

#[test]
fn every_flag_has_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "all.toml",
        r#"[mrc]
data_dir = "d"
vocab_file = "v.txt"
init_checkpoint = "ck"
init_format = "tf"
bert_config_file = "c.json"
output_dir = "o"
max_seq_length = 256
train_batch_size = 4
eval_batch_size = 16
learning_rate = 2e-5
num_train_epochs = 1
warmup_proportion = 0.2
do_lower_case = true
seed = 7
threads = 1
no_test = true
doc_stride = 64
max_query_length = 32
n_best_size = 10
max_answer_length = 20
"#,
    );
    let t = load(&p, "mrc").unwrap();
    assert_eq!(t.init_format, Some(Format::Tf));
    assert_eq!(t.path(&t.file.data_dir), Some(tmp.path().join("d")));
    assert_eq!(t.file.warmup_proportion, Some(0.2));
    assert_eq!(t.file.doc_stride.as_ref().map(|v| *v.get_ref()), Some(64));
    assert_eq!(t.file.no_test, Some(true));
}

#[test]
fn a_task_file_runs_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = common::tiny_chinese();
    write(d, "bert_config.json", &serde_json::to_string(&cfg).unwrap());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layouts/chnsenti");
    let vocab = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vocab.txt");
    let task = write(
        d,
        "senti.toml",
        &format!(
            "[classify]\ntask_name = \"chnsenti\"\ndata_dir = {:?}\nvocab_file = {:?}\n\
             bert_config_file = \"bert_config.json\"\noutput_dir = \"out\"\n\
             train_batch_size = 2\nnum_train_epochs = 2\nmax_seq_length = 32\n",
            fixtures.to_str().unwrap(),
            vocab.to_str().unwrap()
        ),
    );
    let parse = |extra: &[&str]| {
        let mut args = vec!["f", "classify", "--config", task.to_str().unwrap()];
        args.extend(extra);
        Top::try_parse_from(args).unwrap().task
    };
    // Without data_dir, vocab_file and output_dir on the command line.
    run(&parse(&[])).unwrap();
    let out = d.join("out");
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&out.join("metrics.jsonl")), 3, "2 epochs, then test");
    assert_eq!(
        std::fs::read_to_string(out.join("label_list.txt")).unwrap(),
        "0\n1\n"
    );
    // A flag beats the file.
    let out2 = d.join("out2");
    run(&parse(&[
        "--num_train_epochs",
        "1",
        "--output_dir",
        out2.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(lines(&out2.join("metrics.jsonl")), 2, "1 epoch, then test");

    // Without --config the paths are required, each named.
    let e = format!(
        "{:#}",
        run(&Top::try_parse_from(["f", "classify", "--data_dir", "x"])
            .unwrap()
            .task)
        .unwrap_err()
    );
    assert!(e.contains("give --vocab_file"), "{e}");
}

#[test]
fn the_table_names_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let file = |src: &str| write(d, "t.toml", src);

    let ner = file("[ner]\ndata_dir = \"d\"\nvocab_file = \"v\"\noutput_dir = \"o\"\n");
    assert_eq!(task_of(&ner).unwrap(), "ner");
    match from_task_file(&ner).unwrap() {
        FinetuneCommand::Ner(a) => assert_eq!(a.common.config.as_deref(), Some(ner.as_path())),
        other => panic!("{other:?}"),
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/sentiment.toml");
    assert!(matches!(
        from_task_file(&bundled).unwrap(),
        FinetuneCommand::Classify(_)
    ));

    let e = err(task_of(&file("[ner]\nseed = 1\n[mrc]\nseed = 2\n")));
    assert!(e.contains("t.toml:3:2: `mrc`"), "{e}");
    let e = err(task_of(&file("seed = 1\n")));
    assert!(e.contains("t.toml:1:1: `seed`"), "{e}");
    let e = err(task_of(&file("# nothing\n")));
    assert!(e.contains("no [classify], [ner] or [mrc] table"), "{e}");
}

#[test]
fn the_reference_switches_and_the_device_are_task_file_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let t = load(
        &write(
            d,
            "t.toml",
            "[mrc]\ndo_train = false\ndo_predict = true\npredict_batch_size = 4\n\
             num_train_epochs = 1.5\nsave_checkpoints_steps = 0\ndevice = \"cpu\"\n\
             precision = \"fp32\"\nexport_hf = \"hf\"\npredict_file = \"q.json\"\n",
        ),
        "mrc",
    )
    .unwrap();
    let f = &t.file;
    assert_eq!(
        (f.do_train, f.do_eval, f.do_predict),
        (Some(false), None, Some(true))
    );
    assert_eq!(
        (f.predict_batch_size, f.num_train_epochs),
        (Some(4), Some(1.5))
    );
    assert_eq!(f.save_checkpoints_steps, Some(0));
    assert_eq!(
        (f.device.as_deref(), f.precision.as_deref()),
        (Some("cpu"), Some("fp32"))
    );
    // The reading task's files are its own keys.
    let e = err(load(
        &write(d, "c.toml", "[classify]\npredict_file = \"q.json\"\n"),
        "classify",
    ));
    assert!(
        e.contains("c.toml:2:1") && e.contains("predict_file: a setting of `nezha finetune mrc`"),
        "{e}"
    );
}
