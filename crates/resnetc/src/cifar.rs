//! CIFAR-10 and CIFAR-100 test sets in the layouts people have on disk: the official binary
//! version (`test_batch.bin`, `test.bin`) and the python-pickle version that torchvision
//! downloads (`cifar-10-batches-py/test_batch`, `cifar-100-python/test`), recognised from their
//! content; and the preprocessing the shared pretrained models were trained with.
//!
//! A [`Dataset`] keeps the raw pixels (3 KiB an image) and makes normalized float batches on
//! demand, so a 10,000-image test set costs 30 MiB, not 120.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::Array4;
use resnetc_ir::limits::Limit;

use crate::{escape, Error, ErrorKind, Result};

/// Pixels of one image: 3 channel planes (R, G, B) of 32×32, row-major.
pub const PIXELS: usize = 3 * 32 * 32;
/// Bytes per record of the CIFAR-10 binary version: one label, then the pixels.
pub const RECORD: usize = 1 + PIXELS;
/// Bytes per record of the CIFAR-100 binary version: the coarse label, the fine label, the pixels.
pub const RECORD_100: usize = 2 + PIXELS;
/// Per-channel mean and standard deviation (RGB, of pixels scaled to 0..1) the shared pretrained
/// models were trained with (`../shared/README.md`), and torchvision's ImageNet defaults.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// CIFAR-10's class names in label order (`batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// A dataset file's bytes (CIFAR's largest, the CIFAR-100 training set, is 150 MiB).
pub const DATASET_BYTES: Limit = Limit {
    name: "dataset bytes",
    value: 1 << 30,
    why: "CIFAR's largest file is 150 MiB",
};
/// Containers (lists, dicts, tuples, objects) in one pickle: CIFAR's pickles hold about ten.
/// Bounds how deeply the pickle reader can recurse.
pub const PICKLE_CONTAINERS: Limit = Limit {
    name: "pickle containers",
    value: 10_000,
    why: "CIFAR's pickles hold about ten",
};

/// The on-disk layouts [`Dataset::open`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `test_batch.bin`: records of a label byte and 3072 pixel bytes.
    Cifar10Bin,
    /// `test.bin`: records of a coarse and a fine label byte and 3072 pixel bytes.
    Cifar100Bin,
    /// `test_batch`: a pickled dict with `data` (uint8 [n, 3072]) and `labels`.
    Cifar10Py,
    /// `test`: a pickled dict with `data` and `fine_labels` (and `coarse_labels`).
    Cifar100Py,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Cifar10Bin,
        Format::Cifar100Bin,
        Format::Cifar10Py,
        Format::Cifar100Py,
    ];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Cifar10Bin => "cifar10-bin",
            Format::Cifar100Bin => "cifar100-bin",
            Format::Cifar10Py => "cifar10-py",
            Format::Cifar100Py => "cifar100-py",
        }
    }

    /// Classes the labels range over (CIFAR-100: the fine labels).
    pub fn classes(self) -> usize {
        match self {
            Format::Cifar10Bin | Format::Cifar10Py => 10,
            Format::Cifar100Bin | Format::Cifar100Py => 100,
        }
    }

    fn is_pickle(self) -> bool {
        matches!(self, Format::Cifar10Py | Format::Cifar100Py)
    }

    /// The test set's file name in this layout, and the folder the official archive unpacks to.
    fn file_and_folder(self) -> (&'static str, &'static str) {
        match self {
            Format::Cifar10Bin => ("test_batch.bin", "cifar-10-batches-bin"),
            Format::Cifar100Bin => ("test.bin", "cifar-100-binary"),
            Format::Cifar10Py => ("test_batch", "cifar-10-batches-py"),
            Format::Cifar100Py => ("test", "cifar-100-python"),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "unknown dataset format '{}' (known: cifar10-bin, cifar100-bin, cifar10-py, cifar100-py)",
                    escape::name(s)
                ))
            })
    }
}

/// Per-channel normalization: `(pixel / 255 - mean) / std`, as torchvision's `Normalize` after
/// `ToTensor`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Normalize {
    /// The shared pretrained models' ([`MEAN`], [`STD`]).
    fn default() -> Normalize {
        Normalize {
            mean: MEAN,
            std: STD,
        }
    }
}

impl Normalize {
    /// Checks that every mean is finite and every std finite and positive (a zero std would make
    /// every pixel infinite).
    pub fn new(mean: [f32; 3], std: [f32; 3]) -> Result<Normalize> {
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(Error::invalid_input(format!("mean {m} is not finite")));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid_input(format!(
                "std {s} is not a positive finite number"
            )));
        }
        Ok(Normalize { mean, std })
    }

    /// Parses `R,G,B` (three numbers, as `--mean` and `--std` take them).
    pub fn parse_rgb(s: &str) -> Result<[f32; 3]> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "'{}' is not three comma-separated numbers (R,G,B), e.g. 0.485,0.456,0.406",
                    escape::name(s)
                ),
            )
        };
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut rgb = [0f32; 3];
        for (v, p) in rgb.iter_mut().zip(parts) {
            *v = p.parse().map_err(|_| bad())?;
        }
        Ok(rgb)
    }

    /// One channel-planar 32×32 RGB image of bytes into `out` (3 × 32 × 32 floats).
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            let plane = c * 1024..(c + 1) * 1024;
            for (o, p) in out[plane.clone()].iter_mut().zip(&pixels[plane]) {
                *o = (*p as f32 / 255.0 - m) / s;
            }
        }
    }
}

/// A CIFAR test set in memory: raw pixels, labels and class names.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The file read.
    pub path: PathBuf,
    pub format: Format,
    /// One name per class, in label order.
    pub class_names: Vec<String>,
    /// Where the names came from (`None`: built in, or `class N`).
    pub names_from: Option<PathBuf>,
    pixels: Vec<u8>,
    labels: Vec<u16>,
}

impl Dataset {
    /// Reads the dataset at `path` — a file, one of the official archives' folders, or a folder
    /// holding one of those (torchvision's `root`) — keeping its first `limit` images. The format
    /// is recognised from the content unless `format` forces it.
    pub fn open(path: &Path, format: Option<Format>, limit: Option<usize>) -> Result<Dataset> {
        let file = resolve(path, format)?;
        let bytes = read_limited(&file)?;
        let format = match format {
            Some(f) => f,
            None => detect(&file, &bytes)?,
        };
        let (pixels, labels) = if format.is_pickle() {
            read_pickle(&file, &bytes, format, limit)?
        } else {
            read_binary(&file, &bytes, format, limit)?
        };
        let (class_names, names_from) = class_names(&file, format)?;
        Ok(Dataset {
            path: file,
            format,
            class_names,
            names_from,
            pixels,
            labels,
        })
    }

    /// Images in the set.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Classes the labels range over.
    pub fn classes(&self) -> usize {
        self.format.classes()
    }

    /// The label of every image (CIFAR-100: the fine label).
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// Image `i`'s raw pixels: 3 channel planes of 32×32 bytes.
    pub fn pixels(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// Every image's raw pixels, image after image (N × 3 × 32 × 32 bytes).
    pub fn all_pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Images `range` as a normalized NCHW float batch.
    pub fn batch(&self, range: Range<usize>, norm: &Normalize) -> Array4<f32> {
        let mut x = Array4::<f32>::zeros((range.len(), 3, 32, 32));
        let out = x.as_slice_mut().expect("a new array is contiguous");
        for (k, i) in range.enumerate() {
            norm.apply(self.pixels(i), &mut out[k * PIXELS..(k + 1) * PIXELS]);
        }
        x
    }
}

/// Reads up to `limit` images of a CIFAR-10 binary file: NCHW float32 preprocessed as the shared
/// pretrained models were trained, and their labels.
pub fn read_batch(path: &Path, limit: usize) -> Result<(Array4<f32>, Vec<u8>)> {
    let d = Dataset::open(path, Some(Format::Cifar10Bin), Some(limit))?;
    let labels = d.labels.iter().map(|&l| l as u8).collect();
    Ok((d.batch(0..d.len(), &Normalize::default()), labels))
}

/// The file a dataset path names: itself when it is a file; in a folder, the test set of the one
/// layout found there or in one of the official archives' folders inside it.
fn resolve(path: &Path, format: Option<Format>) -> Result<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    if !meta.is_dir() {
        return Ok(path.to_path_buf());
    }
    let formats: Vec<Format> = match format {
        Some(f) => vec![f],
        None => Format::ALL.to_vec(),
    };
    let mut found = Vec::new();
    for f in &formats {
        let (file, folder) = f.file_and_folder();
        for candidate in [path.join(file), path.join(folder).join(file)] {
            if candidate.is_file() && !found.contains(&candidate) {
                found.push(candidate);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::invalid_input(format!(
            "no CIFAR test set in {}: looked for {}",
            escape::path(path),
            formats
                .iter()
                .map(|f| {
                    let (file, folder) = f.file_and_folder();
                    format!("{file} or {folder}/{file}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(Error::invalid_input(format!(
            "several CIFAR test sets in {}: {}; name the file, or pick one with --format",
            escape::path(path),
            found
                .iter()
                .map(|p| escape::path(p))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A regular file's bytes, its size checked against [`DATASET_BYTES`] before reading.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    crate::fsio::read_regular(path, |len| {
        DATASET_BYTES
            .check(len, format_args!("{}'s size", escape::path(path)))
            .map_err(Error::invalid_input)
    })
}

/// The layout of a dataset file, from its first bytes (a pickle starts with its protocol) and,
/// for the binary versions, which record size divides the file with labels in range.
fn detect(path: &Path, bytes: &[u8]) -> Result<Format> {
    if bytes.first() == Some(&0x80) || bytes.first() == Some(&b'(') || bytes.first() == Some(&b'}')
    {
        let dict = parse_pickle(path, bytes)?;
        return Ok(if dict_get(&dict, "fine_labels").is_some() {
            Format::Cifar100Py
        } else {
            Format::Cifar10Py
        });
    }
    let fits = |f: Format| check_binary(bytes, f).is_ok();
    match (fits(Format::Cifar10Bin), fits(Format::Cifar100Bin)) {
        (true, false) => Ok(Format::Cifar10Bin),
        (false, true) => Ok(Format::Cifar100Bin),
        (true, true) => Err(Error::invalid_input(format!(
            "{} reads as CIFAR-10 and as CIFAR-100 binary records; pick one with --format",
            escape::path(path)
        ))),
        (false, false) => Err(Error::invalid_input(format!(
            "{} is not a CIFAR dataset: {}; neither a pickle (the python version) nor whole \
             {RECORD}-byte (CIFAR-10) or {RECORD_100}-byte (CIFAR-100) records with labels in range",
            escape::path(path),
            check_binary(bytes, Format::Cifar10Bin).unwrap_err()
        ))),
    }
}

/// Whether `bytes` are whole records of a binary format with every label in range.
fn check_binary(bytes: &[u8], format: Format) -> std::result::Result<(), String> {
    let (record, label_at) = match format {
        Format::Cifar100Bin => (RECORD_100, 1),
        _ => (RECORD, 0),
    };
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(format!(
            "{} bytes is not a whole number of {record}-byte records",
            bytes.len()
        ));
    }
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        if rec[label_at] as usize >= format.classes() {
            return Err(format!(
                "record {i} has label {}, not below {}",
                rec[label_at],
                format.classes()
            ));
        }
        if format == Format::Cifar100Bin && rec[0] >= 20 {
            return Err(format!(
                "record {i} has coarse label {}, not below 20",
                rec[0]
            ));
        }
    }
    Ok(())
}

fn read_binary(
    path: &Path,
    bytes: &[u8],
    format: Format,
    limit: Option<usize>,
) -> Result<(Vec<u8>, Vec<u16>)> {
    check_binary(bytes, format).map_err(|why| {
        Error::invalid_input(format!(
            "{} is not a {format} file: {why}",
            escape::path(path)
        ))
    })?;
    let (record, label_at) = match format {
        Format::Cifar100Bin => (RECORD_100, 1),
        _ => (RECORD, 0),
    };
    let n = (bytes.len() / record).min(limit.unwrap_or(usize::MAX));
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for rec in bytes.chunks_exact(record).take(n) {
        labels.push(rec[label_at] as u16);
        pixels.extend_from_slice(&rec[record - PIXELS..]);
    }
    Ok((pixels, labels))
}

fn read_pickle(
    path: &Path,
    bytes: &[u8],
    format: Format,
    limit: Option<usize>,
) -> Result<(Vec<u8>, Vec<u16>)> {
    let bad = |why: String| {
        Error::invalid_input(format!(
            "{} is not a {format} pickle: {why}",
            escape::path(path)
        ))
    };
    let dict = parse_pickle(path, bytes)?;
    let key = if format == Format::Cifar100Py {
        "fine_labels"
    } else {
        "labels"
    };
    let labels = dict_get(&dict, key).ok_or_else(|| bad(format!("it has no '{key}'")))?;
    let labels =
        int_list(labels).ok_or_else(|| bad(format!("'{key}' is not a list of integers")))?;
    let data = dict_get(&dict, "data").ok_or_else(|| bad("it has no 'data'".into()))?;
    let (rows, data) = uint8_matrix(data).map_err(|why| bad(format!("'data' {why}")))?;
    if rows != labels.len() {
        return Err(bad(format!(
            "'data' has {rows} images and '{key}' {} labels",
            labels.len()
        )));
    }
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| !(0..format.classes() as i64).contains(l))
    {
        return Err(bad(format!(
            "image {i} has label {l}, not in 0..{}",
            format.classes()
        )));
    }
    let n = rows.min(limit.unwrap_or(usize::MAX));
    let mut pixels = data;
    pixels.truncate(n * PIXELS);
    Ok((pixels, labels[..n].iter().map(|&l| l as u16).collect()))
}

type PickleDict = std::collections::BTreeMap<serde_pickle::HashableValue, serde_pickle::Value>;

/// A pickle's top-level dict, read by serde-pickle once [`pickle_shape`] has bounded what it can
/// cost.
fn parse_pickle(path: &Path, bytes: &[u8]) -> Result<PickleDict> {
    let bad = |why: String| {
        Error::invalid_input(format!(
            "{} is not a CIFAR pickle: {why}",
            escape::path(path)
        ))
    };
    pickle_shape(bytes).map_err(bad)?;
    // numpy arrays pickle as a call of a numpy function plus a state; keep the calls' arguments
    // and the states (the pixel bytes are in them) and read unknown functions as None.
    let opts = serde_pickle::DeOptions::new()
        .keep_restore_state()
        .replace_unresolved_globals();
    match serde_pickle::value_from_slice(bytes, opts) {
        Ok(serde_pickle::Value::Dict(d)) => Ok(d),
        Ok(_) => Err(bad("the pickled object is not a dict".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Looks a key up under its Python 3 (`str`) or Python 2 (`bytes`) spelling.
fn dict_get<'a>(dict: &'a PickleDict, key: &str) -> Option<&'a serde_pickle::Value> {
    use serde_pickle::HashableValue as H;
    dict.get(&H::String(key.into()))
        .or_else(|| dict.get(&H::Bytes(key.as_bytes().to_vec())))
}

fn int_list(v: &serde_pickle::Value) -> Option<Vec<i64>> {
    use serde_pickle::Value as V;
    match v {
        V::List(items) | V::Tuple(items) => items
            .iter()
            .map(|i| match i {
                V::I64(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn str_list(v: &serde_pickle::Value) -> Option<Vec<String>> {
    use serde_pickle::Value as V;
    match v {
        V::List(items) | V::Tuple(items) => items
            .iter()
            .map(|i| match i {
                V::String(s) => Some(s.clone()),
                V::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// A pickled numpy uint8 array of shape [n, 3072]: its row count and bytes. Two spellings:
/// protocols 0–4 rebuild it from a state `(version, shape, dtype, is_fortran, bytes)`;
/// protocol 5 calls `_frombuffer(bytes, dtype, shape, order)`.
fn uint8_matrix(v: &serde_pickle::Value) -> std::result::Result<(usize, Vec<u8>), String> {
    use serde_pickle::Value as V;
    let (shape, fortran, data) = match v {
        V::Tuple(t) if t.len() == 5 => (&t[1], &t[3], &t[4]),
        V::Tuple(t) if t.len() == 4 => (&t[2], &t[3], &t[0]),
        _ => return Err("is not a pickled numpy array".into()),
    };
    let shape = int_list(shape).ok_or("has no readable shape")?;
    let column_major = match fortran {
        V::Bool(f) => *f,
        V::String(order) => order == "F",
        _ => false,
    };
    if column_major {
        return Err("is in Fortran (column-major) order; save it C-contiguous".into());
    }
    let V::Bytes(data) = data else {
        return Err("holds no raw bytes".into());
    };
    match shape[..] {
        [n, cols] if cols == PIXELS as i64 && n >= 0 => {
            let n = n as usize;
            if n.checked_mul(PIXELS) != Some(data.len()) {
                return Err(format!(
                    "has shape [{n}, {PIXELS}] but {} bytes: not uint8",
                    data.len()
                ));
            }
            Ok((n, data.clone()))
        }
        _ => Err(format!("has shape {shape:?}, not [images, {PIXELS}]")),
    }
}

/// Walks a pickle's opcodes (without building anything) and refuses what could make the reader
/// recurse deeply or copy without bound: more than [`PICKLE_CONTAINERS`] containers, or a memo
/// reference to anything but a global or a short string (the only objects CIFAR's pickles share;
/// a shared list is how a small pickle expands into gigabytes).
fn pickle_shape(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut pos = 0usize;
    let mut containers = 0u64;
    // Memo slots that hold a shareable object (a global, a short string), by index.
    let mut shareable = std::collections::HashSet::new();
    let mut memo_len = 0u64;
    // Whether the object last pushed is shareable.
    let mut last_shareable = false;
    let take = |pos: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("truncated at byte {pos}"))?;
        let s = &bytes[*pos..end];
        *pos = end;
        Ok(s)
    };
    let line = |pos: &mut usize| -> std::result::Result<&[u8], String> {
        let rest = &bytes[*pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("truncated at byte {pos}"))?;
        *pos += n + 1;
        Ok(&rest[..n])
    };
    let le = |s: &[u8]| s.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64);
    loop {
        let at = pos;
        let op = *take(&mut pos, 1)?.first().unwrap_or(&0);
        let mut shareable_now = false;
        let mut memo_put: Option<u64> = None;
        let mut memo_get: Option<u64> = None;
        match op {
            b'.' => return Ok(()),
            // No argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | 0x88 | 0x89 | b'a' | b'e' | b's' | b'u' | 0x90
            | 0x97 | 0x98 => {}
            // Containers and calls.
            b']' | b'}' | b')' | b'l' | b'd' | b't' | 0x85 | 0x86 | 0x87 | 0x8f | 0x91 | b'R'
            | b'b' | b'o' | 0x81 | 0x92 => containers += 1,
            0x93 => shareable_now = true,      // STACK_GLOBAL
            0x94 => memo_put = Some(memo_len), // MEMOIZE
            b'Q' => return Err("it holds a persistent id".into()),
            // Fixed-size arguments.
            0x80 | b'K' => {
                take(&mut pos, 1)?;
            }
            b'q' => memo_put = Some(le(take(&mut pos, 1)?)),
            b'h' => memo_get = Some(le(take(&mut pos, 1)?)),
            b'M' => {
                take(&mut pos, 2)?;
            }
            b'J' => {
                take(&mut pos, 4)?;
            }
            b'r' => memo_put = Some(le(take(&mut pos, 4)?)),
            b'j' => memo_get = Some(le(take(&mut pos, 4)?)),
            b'G' | 0x95 => {
                take(&mut pos, 8)?;
            }
            0x82..=0x84 => return Err("it uses the extension registry".into()),
            // Length-prefixed data.
            b'U' | 0x8c | b'C' | 0x8a => {
                let n = le(take(&mut pos, 1)?) as usize;
                take(&mut pos, n)?;
                shareable_now = op != 0x8a;
            }
            b'T' | b'X' | b'B' | 0x8b => {
                let n = le(take(&mut pos, 4)?) as usize;
                take(&mut pos, n)?;
                shareable_now = op != 0x8b && n <= 256;
            }
            0x8d | 0x8e | 0x96 => {
                let n = usize::try_from(le(take(&mut pos, 8)?))
                    .map_err(|_| format!("a length at byte {at} is too large"))?;
                take(&mut pos, n)?;
                shareable_now = n <= 256;
            }
            // Newline-terminated arguments (protocol 0).
            b'I' | b'L' | b'F' => {
                line(&mut pos)?;
            }
            b'S' | b'V' => shareable_now = line(&mut pos)?.len() <= 256,
            b'p' => memo_put = Some(decimal(line(&mut pos)?, at)?),
            b'g' => memo_get = Some(decimal(line(&mut pos)?, at)?),
            b'c' => {
                line(&mut pos)?;
                line(&mut pos)?;
                shareable_now = true;
            }
            b'i' => {
                line(&mut pos)?;
                line(&mut pos)?;
                containers += 1;
            }
            b'P' => return Err("it holds a persistent id".into()),
            _ => return Err(format!("unknown pickle opcode 0x{op:02x} at byte {at}")),
        }
        PICKLE_CONTAINERS.check(containers, "the pickle's containers")?;
        if let Some(slot) = memo_put {
            // A PUT names the object on top of the stack: the one the previous opcode pushed.
            if last_shareable {
                shareable.insert(slot);
            } else {
                shareable.remove(&slot);
            }
            memo_len = memo_len.max(slot + 1);
            continue;
        }
        if let Some(slot) = memo_get {
            if !shareable.contains(&slot) {
                return Err(format!(
                    "byte {at} refers back to a shared container or large value \
                     (CIFAR's pickles share only names and short strings)"
                ));
            }
            shareable_now = true;
        }
        last_shareable = shareable_now;
    }
}

fn decimal(s: &[u8], at: usize) -> std::result::Result<u64, String> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("a malformed memo index at byte {at}"))
}

/// The class names for a dataset file: from the metadata beside it when there is one, else
/// CIFAR-10's built-in names or `class N`.
fn class_names(file: &Path, format: Format) -> Result<(Vec<String>, Option<PathBuf>)> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let n = format.classes();
    let names: Option<(Vec<String>, PathBuf)> = match format {
        Format::Cifar10Bin | Format::Cifar100Bin => {
            let name = if format == Format::Cifar10Bin {
                "batches.meta.txt"
            } else {
                "fine_label_names.txt"
            };
            let meta = dir.join(name);
            match std::fs::metadata(&meta) {
                Ok(m) if m.is_file() => Some((read_class_names(&meta)?, meta)),
                _ => None,
            }
        }
        Format::Cifar10Py | Format::Cifar100Py => {
            let (name, key) = if format == Format::Cifar10Py {
                ("batches.meta", "label_names")
            } else {
                ("meta", "fine_label_names")
            };
            let meta = dir.join(name);
            match std::fs::metadata(&meta) {
                Ok(m) if m.is_file() => {
                    let bytes = read_limited(&meta)?;
                    let dict = parse_pickle(&meta, &bytes)?;
                    let names = dict_get(&dict, key).and_then(str_list).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "{} has no list of strings '{key}'",
                            escape::path(&meta)
                        ))
                    })?;
                    Some((names, meta))
                }
                _ => None,
            }
        }
    };
    match names {
        Some((names, meta)) if names.len() == n => Ok((names, Some(meta))),
        Some((names, meta)) => Err(Error::invalid_input(format!(
            "{} names {} classes, but {format} has {n}",
            escape::path(&meta),
            names.len()
        ))),
        None if n == 10 => Ok((
            CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            None,
        )),
        None => Ok(((0..n).map(|i| format!("class {i}")).collect(), None)),
    }
}

/// Reads class names from a text file, one a line (`--classes`), blank lines skipped.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let bytes = read_limited(path)?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_triples_parse_or_say_what_is_wrong() {
        assert_eq!(
            Normalize::parse_rgb("0.5, 0.25,1").unwrap(),
            [0.5, 0.25, 1.0]
        );
        for bad in ["", "1,2", "1,2,3,4", "a,b,c"] {
            let e = Normalize::parse_rgb(bad).unwrap_err();
            assert!(e.to_string().contains("three comma-separated"), "{e}");
        }
        assert!(Normalize::new([0.0; 3], [0.1, 0.0, 0.1]).is_err());
        assert!(Normalize::new([f32::NAN, 0.0, 0.0], [1.0; 3]).is_err());
    }

    #[test]
    fn binary_records_are_told_apart_by_size_and_labels() {
        let ten = [vec![3u8], vec![0u8; PIXELS]].concat().repeat(2);
        let hundred = [vec![19u8, 99], vec![0u8; PIXELS]].concat().repeat(2);
        assert_eq!(check_binary(&ten, Format::Cifar10Bin), Ok(()));
        assert!(check_binary(&ten, Format::Cifar100Bin).is_err());
        assert_eq!(check_binary(&hundred, Format::Cifar100Bin), Ok(()));
        assert!(check_binary(&hundred, Format::Cifar10Bin).is_err());
        let mut bad = ten.clone();
        bad[RECORD] = 10;
        assert_eq!(
            check_binary(&bad, Format::Cifar10Bin),
            Err("record 1 has label 10, not below 10".into())
        );
    }

    /// Pickles that would make the reader recurse or copy without bound are refused by the walk.
    #[test]
    fn pickle_walk_refuses_deep_nesting_and_shared_containers() {
        // 20,000 nested lists: `]` × 20000, then `a` × 19999, STOP.
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 20_000));
        deep.extend(std::iter::repeat_n(b'a', 19_999));
        deep.push(b'.');
        let e = pickle_shape(&deep).unwrap_err();
        assert!(e.contains("pickle containers"), "{e}");
        // A list memoized and fetched back: `] q\0 h\0 a .`
        let shared = [0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.'];
        let e = pickle_shape(&shared).unwrap_err();
        assert!(e.contains("refers back"), "{e}");
        // A global memoized and fetched back is fine: `c mod\nname\n q\0 h\0 0 .`
        let global = b"\x80\x02cmod\nname\nq\x00h\x000.";
        assert_eq!(pickle_shape(global), Ok(()));
        // Truncated data.
        assert!(pickle_shape(b"\x80\x02T\xff\xff\x00\x00ab")
            .unwrap_err()
            .contains("truncated"));
    }
}
