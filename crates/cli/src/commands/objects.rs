//! `lambent object put|get|ls|rm`: objects of the namespace's S3 buckets, over `/v1`. Bodies
//! stream both ways (a file or standard input up, the response into a file or standard
//! output), never whole in memory; large transfers show a progress bar on a terminal.

use super::buckets::explain;
use super::Ctx;
use crate::client::{ClientError, ObjectInfo, ObjectQuery};
use crate::output;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Upload a file (or standard input) as an object, replacing any object of that key.
    #[command(visible_alias = "cp")]
    Put {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// The file to upload, or '-' for standard input.
        file: String,
        /// The object's Content-Type [default: none; served as application/octet-stream].
        #[arg(long)]
        content_type: Option<String>,
        /// Fail instead of replacing an existing object.
        #[arg(long)]
        no_overwrite: bool,
    },
    /// Download an object into a file, or to standard output.
    Get {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// Where to write it: a file, or '-' for standard output [default: -].
        #[arg(default_value = "-")]
        dest: String,
    },
    /// List a bucket's objects (one level under PREFIX, like a directory, unless --recursive).
    #[command(visible_alias = "list")]
    Ls {
        /// The bucket.
        bucket: String,
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// Every key under the prefix (no grouping at '/').
        #[arg(long, short = 'r', conflicts_with = "delimiter")]
        recursive: bool,
        /// Group keys at this delimiter into common prefixes [default: /].
        #[arg(long)]
        delimiter: Option<String>,
        /// List keys after this one.
        #[arg(long)]
        start_after: Option<String>,
        /// At most this many entries (objects and prefixes) [default: all].
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Delete objects.
    #[command(visible_alias = "delete")]
    Rm {
        /// The bucket.
        bucket: String,
        /// The keys to delete (each must exist).
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// Refuses the keys a URL cannot carry: `.` and `..` are removed from a URL's path as dot
/// segments, even percent-encoded.
fn addressable(key: &str) -> Result<()> {
    if key == "." || key == ".." {
        bail!("the key '{key}' cannot be sent in a URL (it is a dot segment)");
    }
    Ok(())
}

pub fn run(ctx: &Ctx, command: ObjectCommand) -> Result<ExitCode> {
    match &command {
        ObjectCommand::Put { key, .. } | ObjectCommand::Get { key, .. } => addressable(key)?,
        ObjectCommand::Rm { keys, .. } => keys.iter().try_for_each(|k| addressable(k))?,
        ObjectCommand::Ls { .. } => {}
    }
    match command {
        ObjectCommand::Put {
            bucket,
            key,
            file,
            content_type,
            no_overwrite,
        } => put(
            ctx,
            &bucket,
            &key,
            &file,
            content_type.as_deref(),
            no_overwrite,
        ),
        ObjectCommand::Get { bucket, key, dest } => get(ctx, &bucket, &key, &dest),
        ObjectCommand::Ls {
            bucket,
            prefix,
            recursive,
            delimiter,
            start_after,
            limit,
        } => {
            let delimiter = match recursive {
                true => None,
                false => Some(delimiter.unwrap_or_else(|| "/".into())),
            };
            let query = ObjectQuery {
                prefix,
                delimiter,
                start_after,
                max_keys: None,
            };
            ls(ctx, &bucket, query, limit)
        }
        ObjectCommand::Rm { bucket, keys } => rm(ctx, &bucket, &keys),
    }
}

/// Objects from this size on get a progress bar (when standard error is a terminal).
const PROGRESS_FROM: u64 = 16 << 20;

/// A progress bar for a transfer of `len` bytes, if it is large and someone watches.
fn progress(len: Option<u64>, verb: &str) -> Option<ProgressBar> {
    let len = len.filter(|l| *l >= PROGRESS_FROM)?;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("a valid progress template");
    bar.set_style(style);
    bar.set_prefix(verb.to_string());
    Some(bar)
}

fn put(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    file: &str,
    content_type: Option<&str>,
    no_overwrite: bool,
) -> Result<ExitCode> {
    let client = ctx.client()?;
    let (source, len): (Box<dyn Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = File::open(file).with_context(|| format!("cannot open '{file}'"))?;
        let meta = f
            .metadata()
            .with_context(|| format!("cannot read '{file}'"))?;
        if meta.is_dir() {
            bail!("'{file}' is a directory: upload one file at a time");
        }
        (Box::new(f), Some(meta.len()))
    };
    let bar = progress(len, "put");
    let source: Box<dyn Read + Send> = match &bar {
        Some(bar) => Box::new(bar.wrap_read(source)),
        None => source,
    };
    let body = match len {
        Some(len) => reqwest::blocking::Body::sized(source, len),
        None => reqwest::blocking::Body::new(source),
    };
    let stored = client.put_object(bucket, key, body, content_type, no_overwrite);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stored = stored.map_err(|e| {
        // A server refusing before it read the body (no such bucket) may cut the upload
        // short: ask it why.
        let e = match e {
            ClientError::Http { .. } => match client.list_objects(bucket, &probe()) {
                Err(refused @ ClientError::Api { .. }) => refused,
                _ => e,
            },
            e => e,
        };
        explain(e, bucket, Some(key), "cannot put")
    })?;
    if ctx.json() {
        output::print_raw_json(&stored.raw);
    } else {
        println!(
            "put {} bytes to {bucket}/{} (etag {})",
            stored.size, stored.key, stored.etag
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The smallest listing: enough to learn whether the bucket is there and ours.
fn probe() -> ObjectQuery {
    ObjectQuery {
        max_keys: Some(1),
        ..Default::default()
    }
}

/// A file being written: renamed over its destination when complete, removed otherwise.
struct PartialFile {
    path: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl PartialFile {
    fn create(dest: &Path) -> Result<PartialFile> {
        let name = dest
            .file_name()
            .with_context(|| format!("'{}' is not a file name", dest.display()))?;
        let path = dest.with_file_name(format!(".{}.lambent-partial", name.to_string_lossy()));
        let file =
            File::create(&path).with_context(|| format!("cannot write '{}'", path.display()))?;
        Ok(PartialFile {
            path,
            dest: dest.to_path_buf(),
            file: Some(file),
        })
    }

    fn finish(mut self) -> Result<()> {
        let file = self.file.take().expect("finished once");
        file.sync_all()
            .with_context(|| format!("cannot write '{}'", self.path.display()))?;
        drop(file);
        std::fs::rename(&self.path, &self.dest)
            .with_context(|| format!("cannot write '{}'", self.dest.display()))
    }
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn get(ctx: &Ctx, bucket: &str, key: &str, dest: &str) -> Result<ExitCode> {
    let client = ctx.client()?;
    let mut response = client
        .get_object(bucket, key)
        .map_err(|e| explain(e, bucket, Some(key), "cannot get"))?;
    let len = response.content_length();
    let bar = progress(len, "get");
    let copied = if dest == "-" {
        let mut out = std::io::stdout().lock();
        let copied = copy(&mut response, &mut out, bar.as_ref())?;
        out.flush().context("cannot write to standard output")?;
        copied
    } else {
        let mut file = PartialFile::create(Path::new(dest))?;
        let copied = copy(&mut response, &mut file, bar.as_ref())?;
        file.finish()?;
        copied
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(len) = len.filter(|l| *l != copied) {
        bail!("the download of '{key}' broke off after {copied} of {len} bytes");
    }
    if dest != "-" && !ctx.json() {
        eprintln!("got {copied} bytes from {bucket}/{key} into {dest}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies a download to its destination, counting (and showing) the bytes.
fn copy(from: &mut impl Read, to: &mut impl Write, bar: Option<&ProgressBar>) -> Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("the download broke off"),
        };
        to.write_all(&buf[..n])
            .context("cannot write the download")?;
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
}

fn ls(ctx: &Ctx, bucket: &str, mut query: ObjectQuery, limit: Option<usize>) -> Result<ExitCode> {
    let client = ctx.client()?;
    let mut objects: Vec<ObjectInfo> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut next = None;
    loop {
        let room = limit.map(|l| l.saturating_sub(objects.len() + prefixes.len()));
        query.max_keys = room.map(|r| r.min(1000));
        if room == Some(0) {
            break;
        }
        let page = client
            .list_objects(bucket, &query)
            .map_err(|e| explain(e, bucket, None, "cannot list bucket"))?
            .data;
        objects.extend(page.objects);
        prefixes.extend(page.common_prefixes);
        next = page.next_start_after.filter(|_| page.truncated);
        match &next {
            Some(after) => query.start_after = Some(after.clone()),
            None => break,
        }
    }
    if ctx.json() {
        output::print_json(&serde_json::json!({
            "bucket": bucket,
            "prefix": query.prefix,
            "delimiter": query.delimiter,
            "objects": objects,
            "common_prefixes": prefixes,
            "truncated": next.is_some(),
            "next_start_after": next,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if objects.is_empty() && prefixes.is_empty() {
        println!("no objects");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<Vec<String>> = prefixes
        .iter()
        .map(|p| vec![p.clone(), "-".into(), "-".into(), "-".into()])
        .chain(objects.iter().map(|o| {
            vec![
                o.key.clone(),
                o.size.to_string(),
                output::datetime(o.last_modified_ms),
                o.etag.clone(),
            ]
        }))
        .collect();
    rows.sort_by(|a, b| a[0].cmp(&b[0]));
    let mut t = output::table(&["KEY", "SIZE", "MODIFIED", "ETAG"]);
    for row in rows {
        t.add_row(row);
    }
    output::print_table(&t);
    if let Some(after) = next {
        println!("(more: --start-after '{after}')");
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(ctx: &Ctx, bucket: &str, keys: &[String]) -> Result<ExitCode> {
    let client = ctx.client()?;
    let mut code = ExitCode::SUCCESS;
    for key in keys {
        match client.delete_object(bucket, key) {
            Ok(()) => {
                if !ctx.json() {
                    println!("deleted {bucket}/{key}");
                }
            }
            Err(e @ ClientError::Api { .. }) if keys.len() > 1 => {
                super::report(&explain(e, bucket, Some(key), "cannot delete"));
                code = ExitCode::FAILURE;
            }
            Err(e) => return Err(explain(e, bucket, Some(key), "cannot delete")),
        }
    }
    Ok(code)
}
