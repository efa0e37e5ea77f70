//! Image files (PNG, JPEG, BMP, decoded by the `image` crate) as normalized 32×32 NCHW input.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ndarray::Array4;
use resnetc_ir::limits::Limit;

use crate::cifar::{Normalize, PIXELS};
use crate::{escape, Error, ErrorKind, Result};

/// Width or height of an image file resnetc decodes (a 32×32 model needs 32; refusing giant
/// images up front keeps a crafted header from allocating gigabytes).
pub const IMAGE_SIDE: Limit = Limit {
    name: "image side",
    value: 8192,
    why: "the models take 32×32",
};

/// How an image of another size becomes 32×32 (`--resize`): the `image` crate's filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    Nearest,
    /// Bilinear.
    Triangle,
    /// Bicubic.
    CatmullRom,
    Gaussian,
    Lanczos3,
}

impl Resize {
    pub const ALL: [Resize; 5] = [
        Resize::Nearest,
        Resize::Triangle,
        Resize::CatmullRom,
        Resize::Gaussian,
        Resize::Lanczos3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resize::Nearest => "nearest",
            Resize::Triangle => "triangle",
            Resize::CatmullRom => "catmull-rom",
            Resize::Gaussian => "gaussian",
            Resize::Lanczos3 => "lanczos3",
        }
    }

    fn filter(self) -> image::imageops::FilterType {
        use image::imageops::FilterType as F;
        match self {
            Resize::Nearest => F::Nearest,
            Resize::Triangle => F::Triangle,
            Resize::CatmullRom => F::CatmullRom,
            Resize::Gaussian => F::Gaussian,
            Resize::Lanczos3 => F::Lanczos3,
        }
    }
}

impl fmt::Display for Resize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Resize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Resize> {
        Resize::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "unknown resize filter '{}' (known: nearest, triangle, catmull-rom, gaussian, lanczos3)",
                    escape::name(s)
                ))
            })
    }
}

/// Decodes an image file into channel-planar 32×32 RGB bytes (as CIFAR stores them). Gray
/// images are spread over the three channels and alpha is dropped. Another size is refused
/// unless `resize` says how to make it 32×32.
pub fn read_rgb32(path: &Path, resize: Option<Resize>) -> Result<Vec<u8>> {
    let bad = |why: String| Error::invalid_input(format!("{}: {why}", escape::path(path)));
    // A FIFO or a device would block or never end: only regular files are opened.
    let (file, _) = crate::fsio::open_regular(path)?;
    let reader = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::io("cannot read", path, e))?;
    if reader.format().is_none() {
        return Err(bad("not an image resnetc reads (PNG, JPEG or BMP)".into()));
    }
    // One open: the header's size is checked (with the limit named) before any pixel is decoded,
    // and the decoder then holds to the same limit.
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    IMAGE_SIDE
        .check(w.max(h) as u64, "the image's width or height")
        .map_err(bad)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(IMAGE_SIDE.value as u32);
    limits.max_image_height = Some(IMAGE_SIDE.value as u32);
    image::ImageDecoder::set_limits(&mut decoder, limits).map_err(|e| bad(e.to_string()))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    let img = if (img.width(), img.height()) == (32, 32) {
        img
    } else {
        match resize {
            Some(r) => img.resize_exact(32, 32, r.filter()),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "{} is {}×{}, not 32×32; pass --resize FILTER (e.g. --resize triangle) to scale it",
                        escape::path(path),
                        img.width(),
                        img.height()
                    ),
                ))
            }
        }
    };
    let rgb = img.to_rgb8();
    let mut planar = vec![0u8; PIXELS];
    for (p, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            planar[c * 1024 + p] = px.0[c];
        }
    }
    Ok(planar)
}

/// Image files as one normalized NCHW batch, in the order given.
pub fn read_images(
    paths: &[impl AsRef<Path>],
    resize: Option<Resize>,
    norm: &Normalize,
) -> Result<Array4<f32>> {
    resnetc_ir::limits::BATCH
        .check(paths.len() as u64, "the number of images")
        .map_err(Error::invalid_input)?;
    let mut x = Array4::<f32>::zeros((paths.len(), 3, 32, 32));
    let out = x.as_slice_mut().expect("a new array is contiguous");
    for (i, p) in paths.iter().enumerate() {
        let pixels = read_rgb32(p.as_ref(), resize)?;
        norm.apply(&pixels, &mut out[i * PIXELS..(i + 1) * PIXELS]);
    }
    Ok(x)
}

/// Writes channel-planar 32×32 RGB bytes as an image file, its format from the extension (PNG,
/// JPEG, BMP); atomically. Used to turn dataset images into files.
pub fn write_rgb32(path: &Path, planar: &[u8]) -> Result<()> {
    let format = image::ImageFormat::from_path(path).map_err(|_| {
        Error::invalid_input(format!(
            "{}: give a .png, .jpg or .bmp name",
            escape::path(path)
        ))
    })?;
    let mut img = image::RgbImage::new(32, 32);
    for (p, px) in img.pixels_mut().enumerate() {
        *px = image::Rgb([planar[p], planar[1024 + p], planar[2048 + p]]);
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .map_err(|e| Error::invalid_input(format!("{}: {e}", escape::path(path))))?;
    crate::fsio::write_atomic(path, &bytes.into_inner())
}
