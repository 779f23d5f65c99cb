//! The bulk build: heads by balanced k-means, the head graph, replica
//! assignment in parallel, the posting length limit, and the files.
//!
//! Memory: the base (one copy, normalised in place for cosine), a copy of the
//! head vectors in the graph, and the assignment lists (≤ `replicas` pairs
//! per vector). Postings are encoded and written a chunk at a time.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::file::PageFile;
use super::generation::{self, heads_path, meta_path};
use super::meta::{Meta, MetaInfo};
use super::posting::{PostingBuilder, PAGE};
use super::{
    assign, cluster, header, Encoding, OpenParams, PostingLayout, PostingSlot, Result, Spann,
    SpannError, SpannParams, POSTINGS_MAGIC, VECTORS_MAGIC,
};
use crate::dataset::VectorSet;
use crate::distance::{self, Metric};
use crate::hnsw::Hnsw;
use crate::limits;
use crate::quant::Sq8Quantizer;
use crate::score::VectorCodec;

/// Bytes gathered per write of the bulk build's files.
const WRITE_BUFFER: usize = 4 << 20;

fn bar(progress: bool, len: usize, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}]"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

impl Spann {
    /// Builds an index over `base` into the directory `dir` (created if
    /// needed; existing index files are replaced) on the current rayon pool,
    /// and opens it with `opts`. Vector ids are row numbers. The index is
    /// written as generation 1.
    pub fn build(
        dir: &Path,
        mut base: VectorSet,
        metric: Metric,
        params: SpannParams,
        opts: OpenParams,
        progress: bool,
    ) -> Result<Spann> {
        params.validate()?;
        let dim = base.dim;
        let n = base.len();
        if dim == 0 || dim > limits::MAX_DIMENSION {
            return Err(SpannError::param(
                "dim",
                format!("must be in 1..={}, got {dim}", limits::MAX_DIMENSION),
            ));
        }
        if n == 0 || n >= u32::MAX as usize {
            return Err(SpannError::param(
                "base",
                format!("must hold 1..2^32-1 vectors, got {n}"),
            ));
        }
        super::check_posting_room(dim, &params)?;
        let backend = &*opts.backend;
        backend.create_dir_all(dir).map_err(SpannError::io(dir))?;
        generation::remove_all(backend, dir)?;
        let _ = backend.remove(&dir.join("meta"));
        let _ = backend.remove(&dir.join("heads.hnsw"));
        // Check and normalise in place: the build holds one copy of the data.
        base.data
            .par_chunks_mut(dim)
            .enumerate()
            .try_for_each(|(i, v)| {
                if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                    return Err(SpannError::NonFinite {
                        what: format!("base vector {i}"),
                        index: j,
                    });
                }
                if metric.normalizes() && !distance::normalize(v) {
                    return Err(SpannError::ZeroNorm {
                        what: format!("base vector {i}"),
                    });
                }
                Ok(())
            })?;
        let data = &base.data;

        tracing::info!(n, dim, head_ratio = params.head_ratio, "selecting heads");
        let head_rows = cluster::select_heads(
            data,
            dim,
            metric,
            params.head_ratio,
            params.branching,
            params.balance,
            params.seed,
        );
        tracing::info!(heads = head_rows.len(), "building head graph");
        let mut head_data = Vec::with_capacity(head_rows.len() * dim);
        for &r in &head_rows {
            head_data.extend_from_slice(&data[r as usize * dim..(r as usize + 1) * dim]);
        }
        let heads = Hnsw::build_owned(head_data, dim, metric, params.hnsw, progress)?;

        let dist = metric.kernel();
        let b = bar(progress, n, "assigning replicas");
        let assignment: Vec<Vec<(u32, f32)>> = data
            .par_chunks(dim)
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(cands, out), (i, v)| {
                    assign::assign(&heads, &dist, &params, v, Default::default(), cands, out)?;
                    if i % 1024 == 0 {
                        b.inc(1024);
                    }
                    Ok(out.clone())
                },
            )
            .collect::<Result<_>>()?;
        b.finish_and_clear();

        // Group by posting, nearest first, then enforce the length limit:
        // drop the farthest entries that have a copy elsewhere.
        let layout = PostingLayout {
            dim,
            encoding: params.encoding,
        };
        let limit = layout.max_entries(params.max_posting_pages as usize);
        let mut lists: Vec<Vec<(u32, f32)>> = vec![Vec::new(); head_rows.len()];
        let mut copies = vec![0u8; n];
        for (i, a) in assignment.into_iter().enumerate() {
            copies[i] = a.len() as u8;
            for (h, d) in a {
                lists[h as usize].push((i as u32, d));
            }
        }
        let mut dropped = 0usize;
        for l in &mut lists {
            l.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let mut j = l.len();
            while l.len() > limit && j > 0 {
                j -= 1;
                let id = l[j].0 as usize;
                if copies[id] > 1 {
                    copies[id] -= 1;
                    l.remove(j);
                    dropped += 1;
                }
            }
        }
        let entries: usize = lists.iter().map(Vec::len).sum();
        tracing::info!(
            entries,
            dropped,
            replicas_per_vector = entries as f64 / n as f64,
            "assigned"
        );

        let codec = match params.encoding {
            Encoding::F32 => VectorCodec::F32,
            Encoding::F16 => VectorCodec::F16,
            Encoding::Sq8 => {
                let step = (n / 20_000).max(1);
                VectorCodec::Sq8(Sq8Quantizer::train(data.chunks_exact(dim).step_by(step))?)
            }
        };
        let info = MetaInfo {
            params,
            dim,
            metric,
            nonce: rand::random(),
            generation: 1,
            file_pages: 1,
        };
        let mut meta = Meta {
            info,
            sq8: codec.sq8().map(|q| q.to_bytes()),
            postings: Vec::with_capacity(lists.len()),
            versions: vec![0u32; n],
            free: Vec::new(),
        };

        // postings.dat: header page, then postings in head order.
        let ppath = dir.join("postings.dat");
        let mut w = PageFile::writer(
            backend,
            &ppath,
            header(POSTINGS_MAGIC, &meta.info),
            WRITE_BUFFER,
        )?;
        let b = bar(progress, lists.len(), "writing postings");
        let mut next_page = 1u64;
        for chunk in lists.chunks(1024) {
            let start = meta.postings.len();
            let encoded: Vec<Vec<u8>> = chunk
                .par_iter()
                .enumerate()
                .map_init(
                    || (PostingBuilder::default(), Vec::new()),
                    |(pb, code), (j, l)| {
                        pb.clear();
                        for &(id, _) in l {
                            code.clear();
                            codec.encode_bytes(
                                &data[id as usize * dim..(id as usize + 1) * dim],
                                code,
                            );
                            pb.push(id, 0, code);
                        }
                        let mut out = Vec::new();
                        pb.finish((start + j) as u32, layout, &mut out);
                        out
                    },
                )
                .collect();
            for (e, l) in encoded.iter().zip(chunk) {
                w.put(e).map_err(SpannError::io(&ppath))?;
                let pages = (e.len() / PAGE) as u32;
                meta.postings.push(PostingSlot {
                    first_page: next_page,
                    capacity: pages,
                    count: l.len() as u32,
                    bytes: layout.bytes(l.len()) as u32,
                });
                next_page += u64::from(pages);
            }
            b.inc(chunk.len() as u64);
        }
        b.finish_and_clear();
        w.finish().map_err(SpannError::io(&ppath))?;
        meta.info.file_pages = next_page;
        drop(lists);

        if codec.lossy() {
            let vpath = dir.join("vectors.f32");
            let mut w = PageFile::writer(
                backend,
                &vpath,
                header(VECTORS_MAGIC, &meta.info),
                WRITE_BUFFER,
            )?;
            for rows in data.chunks(WRITE_BUFFER / 4) {
                w.put(bytemuck::cast_slice(rows))
                    .map_err(SpannError::io(&vpath))?;
            }
            // Whole pages, so O_DIRECT reads of the last rows stay inside the file.
            let pad = (PAGE - data.len() * 4 % PAGE) % PAGE;
            w.put(&vec![0u8; pad]).map_err(SpannError::io(&vpath))?;
            w.finish().map_err(SpannError::io(&vpath))?;
        } else {
            let _ = backend.remove(&dir.join("vectors.f32"));
        }
        // Replicas were assigned with exact head vectors; store them encoded.
        let heads = heads.reencode(params.head_encoding)?;
        heads.save_to(backend, &heads_path(dir, 1))?;
        meta.save(backend, &meta_path(dir, 1))?;
        drop(base);
        Spann::open_generation(dir, 1, opts)
    }
}
