/*
 * ijepa.h — I-JEPA (Assran et al., 2023) training and inference as a C library.
 *
 * This header is hand-written and is the single source of truth for the C ABI of libijepa;
 * the Swift implementation is checked against it by the compiler.
 *
 * Conventions
 *   Status      Every function that can fail returns an int status: IJEPA_OK (0) or a negative
 *               IJEPA_ERR_* code. On failure ijepa_last_error() describes what was wrong (it
 *               names the offending argument) and outputs are left untouched unless stated.
 *               No input, however bad, crashes the host process.
 *   Errors      ijepa_last_error() is per thread: a failure on one thread never overwrites the
 *               message another thread is reading. It stays valid until the next failing call
 *               on the same thread. Successful calls do not clear it.
 *   Ownership   Inputs are borrowed for the duration of the call and never retained. Outputs go
 *               to caller-allocated buffers, except objects created by ijepa_*_create/_sample,
 *               which the caller releases with the matching ijepa_*_free. Pointers returned by
 *               ijepa_model_buffer and tensor names live as long as the model.
 *   Threads     A model may be used by one thread at a time (calls on one model must not
 *               overlap). Distinct models are fully independent and may be used from different
 *               threads concurrently. Functions without a model argument are thread-safe.
 *               Matrix products use OpenBLAS, whose thread count is process-wide: the library
 *               sets it to 1 and runs its own per-model thread pool (n_threads) around
 *               single-threaded BLAS calls, so concurrent models do not interfere.
 *   Layouts     Images are float32 NCHW [batch][in_chans][image_size][image_size], already
 *               normalized. Patch index n = row * grid + col, grid = image_size / patch_size.
 *   Numbers     All parameters, gradients, optimizer state and activations are float32.
 *   Versioning  IJEPA_ABI_VERSION changes only on incompatible changes (make test holds the ABI
 *               still against a baseline, Tests/ABI). Structs that may grow begin with
 *               struct_size, and fields are only ever appended. The CALLER sets struct_size to
 *               the sizeof of its own struct, for inputs and outputs alike:
 *                   ijepa_config c = {.struct_size = sizeof c};
 *                   ijepa_config_preset("vit_base", &c);
 *               The library reads only the fields that size covers (later ones take their
 *               defaults) and writes only those (a program built against an older header is
 *               never written past its struct). Structs without struct_size never change.
 */
#ifndef IJEPA_H
#define IJEPA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IJEPA_ABI_VERSION 1

/* Library version "MAJOR.MINOR.PATCH"; static storage, never NULL. */
const char *ijepa_version(void);
/* IJEPA_ABI_VERSION of the loaded library: compare with the header's to detect a mismatch. */
uint32_t ijepa_abi_version(void);

/* ---- status codes -------------------------------------------------------------------- */
enum {
    IJEPA_OK = 0,
    IJEPA_ERR_INVALID_ARGUMENT = -1, /* NULL pointer, out-of-range value, bad config field   */
    IJEPA_ERR_SHAPE = -2,            /* sizes that do not fit together (batch, mask lengths) */
    IJEPA_ERR_OUT_OF_MEMORY = -3,    /* allocation refused or larger than the machine        */
    IJEPA_ERR_IO = -4,               /* file could not be read or written                    */
    IJEPA_ERR_FORMAT = -5,           /* file is not a valid checkpoint                       */
    IJEPA_ERR_STATE = -6,            /* call out of order (e.g. optimizer step without grads) */
    IJEPA_ERR_NUMERIC = -7,          /* NaN/Inf in inputs, loss or gradients; nothing updated */
    IJEPA_ERR_INTERNAL = -8          /* a bug in the library: please report it               */
};

/* Short English name of a status ("ok", "invalid argument", ...); static, never NULL. */
const char *ijepa_status_string(int status);
/* This thread's last failure detail, "" if none. Valid until the thread's next failure. */
const char *ijepa_last_error(void);

/* ---- configuration ------------------------------------------------------------------- */
typedef struct ijepa_config {
    uint32_t struct_size;                 /* sizeof(ijepa_config), set by the caller          */
    int32_t  image_size, patch_size, in_chans;
    int32_t  embed_dim, depth, num_heads;
    float    mlp_ratio;                   /* encoder MLP; the predictor's is 4, as official  */
    int32_t  pred_embed_dim, pred_depth, pred_num_heads;   /* pred_num_heads 0 = num_heads    */
    int32_t  num_enc_masks, num_pred_masks, min_keep, allow_overlap, full_grid;
    float    enc_mask_scale[2], pred_mask_scale[2], aspect_ratio[2];
    float    start_lr, lr, final_lr, weight_decay, final_weight_decay, ema_start, ema_end;
    int64_t  warmup_steps, total_steps;
    uint64_t seed;
    int32_t  n_threads;                   /* <= 0: all cores                                  */
    /* ---- appended after the first release (read only when struct_size covers them) ---- */
    int32_t  reserved0;                   /* the first release's tail padding: ignored        */
    int32_t  ragged_context;              /* 1: every image keeps its whole context (see
                                             "ragged contexts" below; not the official code);
                                             0 (default): contexts cut to the batch minimum  */
} ijepa_config;

/* Fills *out with the official recipe's defaults on a vit_tiny-sized model (224 px, patch 16,
 * 192 x 12, predictor 384 x 6, masks enc 0.85-1.0 / pred 0.15-0.2 / aspect 0.75-1.5, 1 context
 * and 4 targets, min_keep 10, lr 2e-4 -> 1e-3 -> 1e-6, wd 0.04 -> 0.4, EMA 0.996 -> 1.0).
 * out->struct_size is set by the caller, at least 152 (see Versioning above). */
int ijepa_config_default(ijepa_config *out);
/* Fills *out (out->struct_size set by the caller) with a named preset: "vit_tiny", "vit_small",
 * "vit_base", "vit_large", "vit_huge", "vit_giant", "fmnist_tiny", "fmnist_tiny_ragged", "tiny32".
 * "fmnist_tiny_ragged" is "fmnist_tiny" with ragged_context = 1 (not the official code; the
 * better features at 20 epochs on Fashion-MNIST, docs/ragged.md). IJEPA_ERR_INVALID_ARGUMENT
 * for other names. */
int ijepa_config_preset(const char *name, ijepa_config *out);
/* The name of preset `index` (0 <= index), in the order listed above; NULL past the last. Static
 * storage. Thread-safe. */
const char *ijepa_config_preset_name(int32_t index);

/* The fields of ijepa_config, described for bindings that build the struct from the loaded
 * library (the Python package does): struct_size and reserved0 are not listed; every other
 * field is, in struct order. */
enum {
    IJEPA_TYPE_INT32 = 1,
    IJEPA_TYPE_INT64 = 2,
    IJEPA_TYPE_UINT64 = 3,
    IJEPA_TYPE_FLOAT = 4,
    IJEPA_TYPE_BOOL = 5,          /* int32_t holding 0 or 1                                   */
    IJEPA_TYPE_FLOAT_PAIR = 6     /* float[2]: (min, max)                                      */
};
/* Number of fields ijepa_config_field describes. */
int32_t ijepa_config_field_count(void);
/* Field `index` (0 <= index < ijepa_config_field_count()): *name is the header's field name
 * (also the key in a checkpoint's config JSON; static storage), *type an IJEPA_TYPE_*, *offset
 * its byte offset in ijepa_config. Any of the three may be NULL. A caller's struct holds the
 * field only if its struct_size reaches offset + the type's size.
 * IJEPA_ERR_INVALID_ARGUMENT for an index out of range. Thread-safe. */
int ijepa_config_field(int32_t index, const char **name, int32_t *type, size_t *offset);

/* ---- model --------------------------------------------------------------------------- */
typedef struct ijepa_model ijepa_model;

/* Creates a model (context encoder, predictor, target encoder = copy of the encoder, AdamW
 * state) initialized as the official training path does, from cfg->seed. cfg is copied.
 * Handles are opaque ids, never reused: a freed handle is rejected (IJEPA_ERR_INVALID_ARGUMENT)
 * even after new models were created.
 * cfg->struct_size must be at least the size of the first release of ijepa_config, 152 bytes.
 * On success *out owns the model; release it with ijepa_model_free. */
int  ijepa_model_create(const ijepa_config *cfg, ijepa_model **out);
/* Releases a model and everything it owns. NULL is a no-op. */
void ijepa_model_free(ijepa_model *m);
/* Copies the model's config into *out, the fields out->struct_size covers (set by the caller;
 * n_threads is the current value, see ijepa_model_set_n_threads). */
int  ijepa_model_get_config(const ijepa_model *m, ijepa_config *out);
/* Threads used by this model's kernels; <= 0 means all cores. */
int  ijepa_model_set_n_threads(ijepa_model *m, int32_t n_threads);
/* Patches per image (grid * grid) and encoder width; -1 if m is not a live model. */
int32_t ijepa_model_num_patches(const ijepa_model *m);
int32_t ijepa_model_embed_dim(const ijepa_model *m);
/* Optimizer steps taken so far (the schedules' counter; restored by ijepa_model_load);
 * -1 if m is not a live model. */
int64_t ijepa_model_step(const ijepa_model *m);

/* ---- masks --------------------------------------------------------------------------- */
typedef struct ijepa_masks {              /* patch indices n = row*grid + col                 */
    int32_t batch, num_enc, k_enc, num_pred, k_pred;
    int32_t *enc;                         /* [num_enc][batch][k_enc]                          */
    int32_t *pred;                        /* [num_pred][batch][k_pred]                        */
} ijepa_masks;

/* Samples one batch of masks with the official multi-block collator semantics from the
 * model's own seeded generator (advances it). The library allocates enc and pred; release
 * them with ijepa_masks_free. Masks passed to the library are validated: equal lengths,
 * indices in 0..num_patches-1, no index repeated within one mask. */
int  ijepa_masks_sample(ijepa_model *m, int32_t batch, ijepa_masks *out);
/* Frees what ijepa_masks_sample allocated and zeroes the struct. NULL is a no-op.
 * Do not call it on masks whose arrays you allocated yourself. */
void ijepa_masks_free(ijepa_masks *masks);

/* ---- training ------------------------------------------------------------------------ */
typedef struct ijepa_step_stats {
    int64_t step;                         /* optimizer steps taken, after this one            */
    float   loss, lr, weight_decay, ema_momentum, grad_norm;
} ijepa_step_stats;

/* One official training step: lr/wd/EMA schedules advance, target encoder on the full images,
 * context encoder and predictor, smooth-L1 loss, backward, AdamW, EMA update.
 * images: float32 NCHW, batch*in_chans*image_size*image_size, already normalized.
 * masks NULL: sampled from the model's own seeded mask generator.
 * IJEPA_ERR_NUMERIC (NaN/Inf images, loss or gradients) leaves parameters, optimizer state,
 * target encoder and step counter exactly as they were. The step counter stays below 2^62
 * (the largest a checkpoint loads): a step from 2^62 - 1 is IJEPA_ERR_STATE, nothing changed. */
int ijepa_train_step(ijepa_model *m, const float *images, int32_t batch,
                     const ijepa_masks *masks, ijepa_step_stats *stats /* may be NULL */);
/* The first half of a step: forward and backward; overwrites the gradient buffer
 * (IJEPA_BUF_GRADS). Between this and ijepa_optimizer_step a caller may all-reduce the
 * gradients (data parallelism). masks NULL: sampled as in ijepa_train_step. On any failure
 * the gradient buffer is unspecified and ijepa_optimizer_step returns IJEPA_ERR_STATE until
 * the next successful forward_backward; parameters, optimizer state, target encoder, step
 * counter and mask generator are unchanged. */
int ijepa_forward_backward(ijepa_model *m, const float *images, int32_t batch,
                           const ijepa_masks *masks, float *loss /* may be NULL */);
/* The second half: schedules advance, AdamW with the current gradients, EMA update.
 * IJEPA_ERR_STATE if no forward_backward preceded it since the last optimizer step, or if the
 * step counter is at 2^62 - 1 (see ijepa_train_step). */
int ijepa_optimizer_step(ijepa_model *m, ijepa_step_stats *stats /* may be NULL */);
/* Overrides lr, weight decay and EMA momentum for the following steps; a negative value
 * returns that quantity to its schedule. */
int ijepa_set_schedule_override(ijepa_model *m, float lr, float weight_decay, float ema_momentum);

/* ---- ragged contexts (beyond the official code) ------------------------------------- */
/* The official collator cuts every image's context to the shortest one of the batch (on an
 * fmnist-tiny recipe's 8x8 grid that leaves ~11 context patches). With ragged masks each image keeps its own
 * context: context j of image b is enc[j*batch*k_enc_max + b*k_enc_max + i] for
 * i < enc_len[j*batch + b]. The context encoder and the predictor run every sequence at its
 * own length (no padding; attention sees only the image's own tokens), so image b's outputs
 * and gradient contributions are exactly those of image b run alone. Targets keep one size per
 * batch, as officially, so the loss is the same mean over all target rows.
 * For numpy users: enc is a padded [num_enc, batch, k_enc_max] int32 array, enc_len a
 * [num_enc, batch] int32 array. Entries past a context's length are ignored on input and -1
 * in sampled masks. */
typedef struct ijepa_ragged_masks {
    int32_t batch, num_enc, k_enc_max, num_pred, k_pred;
    int32_t *enc;                         /* [num_enc][batch][k_enc_max], padded               */
    int32_t *enc_len;                     /* [num_enc][batch], each in 1..k_enc_max            */
    int32_t *pred;                        /* [num_pred][batch][k_pred]                          */
} ijepa_ragged_masks;

/* Samples the same blocks as ijepa_masks_sample would (same generator, advanced the same way)
 * but without the cut to the batch minimum: k_enc_max is the longest context of the batch.
 * Release with ijepa_ragged_masks_free. Works whatever the config's ragged_context. */
int  ijepa_masks_sample_ragged(ijepa_model *m, int32_t batch, ijepa_ragged_masks *out);
/* Frees what ijepa_masks_sample_ragged allocated and zeroes the struct. NULL is a no-op. */
void ijepa_ragged_masks_free(ijepa_ragged_masks *masks);
/* ijepa_train_step / ijepa_forward_backward with ragged masks. masks NULL: sampled from the
 * model's generator with ragged contexts (whatever the config's ragged_context). Validation
 * and failure guarantees are those of the uniform versions. */
int ijepa_train_step_ragged(ijepa_model *m, const float *images, int32_t batch,
                            const ijepa_ragged_masks *masks, ijepa_step_stats *stats /* may be NULL */);
int ijepa_forward_backward_ragged(ijepa_model *m, const float *images, int32_t batch,
                                  const ijepa_ragged_masks *masks, float *loss /* may be NULL */);

/* ---- gradient accumulation: a large batch in micro-batches ---------------------------- */
/* One optimizer step over `batch` images run as micro-batches of at most micro_batch images,
 * so a step of the paper's batch needs the activation memory of one micro-batch. The masks of
 * the whole step come from one draw for the whole batch (masks NULL: the model's generator,
 * with the official cut to the batch minimum over all `batch` images; ragged contexts when the
 * config says), each micro-batch takes its images' rows and adds its gradient weighted by its
 * share of the batch: the step equals one ijepa_train_step of `batch` images to float
 * rounding. images: all `batch` images. stats->loss is the whole batch's loss. Failure
 * guarantees are those of ijepa_train_step (nothing updated, mask stream unchanged). */
int ijepa_train_step_accumulate(ijepa_model *m, const float *images, int32_t batch, int32_t micro_batch,
                                const ijepa_masks *masks, ijepa_step_stats *stats /* may be NULL */);
/* The same with ragged masks (masks NULL: sampled with ragged contexts, whatever the config). */
int ijepa_train_step_accumulate_ragged(ijepa_model *m, const float *images, int32_t batch, int32_t micro_batch,
                                       const ijepa_ragged_masks *masks, ijepa_step_stats *stats /* may be NULL */);
/* The building block, for micro-batches of a data-parallel shard: ijepa_forward_backward with
 * the gradient buffer set to weight x this batch's gradient (accumulate == 0: a step's first
 * batch) or that added to it (accumulate != 0: the step's later batches; IJEPA_ERR_STATE unless
 * a forward_backward of this step precedes it). For micro-batch b of a step of B images the
 * weight is b / B (every image holds the same number of loss elements). weight: finite, > 0.
 * *loss: this batch's own loss. On any failure no gradients are pending (as ijepa_forward_backward). */
int ijepa_forward_backward_accumulate(ijepa_model *m, const float *images, int32_t batch, const ijepa_masks *masks,
                                      float weight, int32_t accumulate, float *loss /* may be NULL */);
int ijepa_forward_backward_accumulate_ragged(ijepa_model *m, const float *images, int32_t batch,
                                             const ijepa_ragged_masks *masks, float weight, int32_t accumulate,
                                             float *loss /* may be NULL */);

/* ---- parameters as flat buffers ------------------------------------------------------ */
enum { IJEPA_BUF_PARAMS = 0, IJEPA_BUF_GRADS = 1, IJEPA_BUF_TARGET = 2,
       IJEPA_BUF_ADAM_M = 3, IJEPA_BUF_ADAM_V = 4 };

typedef struct ijepa_tensor_info {
    const char *name;                     /* official state_dict name with a prefix; lives with the model */
    int32_t     ndim;
    int64_t     shape[4];                 /* unused trailing dims are 1                       */
    size_t      offset;                   /* in floats, from the start of the buffer          */
} ijepa_tensor_info;

/* Borrowed pointer to one of the model's flat float32 buffers (which = IJEPA_BUF_*); it lives
 * as long as the model and never moves. *n_floats (if not NULL) receives its length. Writing
 * into PARAMS or TARGET is how a caller sets weights. NULL on a bad argument (see
 * ijepa_last_error). PARAMS, GRADS, ADAM_M and ADAM_V share one layout ("encoder.<key>" then
 * "predictor.<key>"); TARGET holds "target_encoder.<key>". Fixed position tables are not
 * trainable and are not in the buffers. */
float  *ijepa_model_buffer(ijepa_model *m, int which, size_t *n_floats);
/* Number of named tensors in a buffer; -1 on a bad argument. */
int32_t ijepa_model_num_tensors(const ijepa_model *m, int which);
/* Describes tensor `index` (0 .. num_tensors-1) of buffer `which`. */
int     ijepa_model_tensor_info(const ijepa_model *m, int which, int32_t index, ijepa_tensor_info *out);

/* ---- inference ----------------------------------------------------------------------- */
enum { IJEPA_TARGET_ENCODER = 0, IJEPA_CONTEXT_ENCODER = 1 };

/* Encodes full images with the target (EMA, the one the paper evaluates) or the context
 * encoder. tokens: batch*N*D floats (after the final norm) or NULL; pooled: batch*D, the mean
 * over the N tokens, or NULL. */
int ijepa_encode(ijepa_model *m, const float *images, int32_t batch, int which_encoder,
                 float *tokens /* batch*N*D or NULL */, float *pooled /* batch*D mean over N, or NULL */);

/* Evaluation features from the last k blocks (the paper probes the last layer or the last 4
 * concatenated): for each of the encoder's last `last_k` blocks (1 <= last_k <= depth), the
 * block's output passed through the encoder's final norm (as DINO's get_intermediate_layers)
 * and averaged over the N tokens, concatenated earliest block first.
 * pooled: batch * last_k * D floats, [batch][last_k][D]. last_k = 1 gives ijepa_encode's
 * pooled output. */
int ijepa_encode_layers(ijepa_model *m, const float *images, int32_t batch, int which_encoder,
                        int32_t last_k, float *pooled /* batch*last_k*D */);

/* ---- checkpoints -------------------------------------------------------------------- */
/* Checkpoints are safetensors files. Tensor names are the official state_dict keys under
 * "encoder.", "predictor." and "target_encoder." (fixed position tables included, as in the
 * official state_dicts), so PyTorch loads them with safetensors.torch.load_file; the config is
 * in the metadata ("ijepa.config", JSON with this header's field names). */
enum {
    IJEPA_SAVE_WEIGHTS = 1,        /* encoder, predictor and target encoder                      */
    IJEPA_SAVE_TRAINING_STATE = 2  /* also AdamW m/v ("adam_m."/"adam_v." + name), the step
                                      counter, the mask generator and RNG state and the schedule
                                      overrides: training resumes bit for bit (implies weights) */
};

/* Saves atomically: a temporary file in the same directory is written, fsynced and renamed
 * over path, so a crash or kill at any moment leaves either the old file or the new one. */
int ijepa_model_save(const ijepa_model *m, const char *path, uint32_t flags);
/* Creates a model from a checkpoint written by ijepa_model_save (config from its metadata),
 * restoring the training state when the file has it. *out is released with ijepa_model_free.
 * Truncated or corrupted files give IJEPA_ERR_FORMAT with a message naming the problem. */
int ijepa_model_load(const char *path, ijepa_model **out);
/* Copies weights from any safetensors file with official names into an existing model
 * (F32; F64, F16 and BF16 tensors are converted), e.g. one converted from an official .pth.tar by tools/convert_official.py. Names may carry
 * DDP's "module." component. strict != 0: every encoder, predictor and target-encoder tensor
 * must be present and nothing unexpected may be (the message names them); strict == 0: what
 * is missing is left as it is. On any error the model is unchanged. */
int ijepa_model_load_weights(ijepa_model *m, const char *path, int strict);

/* ---- pretrained encoders (inference only) -------------------------------------------- */
/* An encoder holds one ViT encoder's weights and nothing else (no optimizer state, no
 * predictor, no mask config): the way to embed images with a released I-JEPA model. Its
 * memory is the weights once (float32) plus activations for the batch being encoded; loading
 * reads every tensor straight into place, never holding a second copy of the weights, or maps
 * the library's own encoder file (ijepa_encoder_save).
 * An encoder may be used by one thread at a time; distinct encoders are independent. */
typedef struct ijepa_encoder ijepa_encoder;

/* Where an encoder's weights came from (ijepa_encoder_info.source). */
enum {
    IJEPA_SOURCE_MODEL = 0,       /* a live training model (ijepa_encoder_from_model)           */
    IJEPA_SOURCE_CHECKPOINT = 1,  /* a libijepa checkpoint (ijepa_model_save)                    */
    IJEPA_SOURCE_OFFICIAL = 2,    /* safetensors with the official state_dict names: bare keys
                                     or under "encoder." / "target_encoder.", each possibly with
                                     DDP's "module." (tools/convert_official.py writes them)    */
    IJEPA_SOURCE_HF = 3,          /* Hugging Face transformers IJepaModel: model.safetensors and
                                     its config.json (transformers 4 and 5 tensor names)        */
    IJEPA_SOURCE_TIMM = 4         /* timm VisionTransformer, no class token (vit_*_gap_*_ijepa) */
};

/* How the position table is resized for images whose patch grid differs from the weights'. */
enum {
    IJEPA_POS_AUTO = 0,           /* as the source's own code does: BICUBIC_AA for timm files,
                                     BICUBIC otherwise                                          */
    IJEPA_POS_BICUBIC = 1,        /* F.interpolate(mode="bicubic", align_corners=False), as
                                     transformers' interpolate_pos_encoding (the official code's
                                     intent; its own version fails without a class token)     */
    IJEPA_POS_BICUBIC_AA = 2      /* the same with antialias=True, as timm's
                                     resample_abs_pos_embed                                    */
};

typedef struct ijepa_encoder_options {
    uint32_t struct_size;         /* sizeof(ijepa_encoder_options), set by the caller           */
    int32_t  which_encoder;       /* files holding both (checkpoints, official files):
                                     IJEPA_TARGET_ENCODER (default, the one the paper evaluates)
                                     or IJEPA_CONTEXT_ENCODER. Files with one encoder (HF, timm,
                                     bare official keys) ignore it.                            */
    int32_t  num_heads;           /* 0 (default): from the file's metadata or config.json (the
                                     tensors cannot tell it); > 0: this, checked against them  */
    int32_t  n_threads;           /* <= 0 (default): all cores                                  */
    int32_t  pos_interpolation;   /* IJEPA_POS_* (default IJEPA_POS_AUTO)                       */
} ijepa_encoder_options;

/* Fills *opts with the defaults. Like every struct the library writes, the caller sets
 * opts->struct_size = sizeof(ijepa_encoder_options) first and the library writes only the
 * fields that size covers (a program built against an older header gets the fields it knows):
 *     ijepa_encoder_options o = {.struct_size = sizeof o};
 *     ijepa_encoder_options_init(&o);
 * IJEPA_ERR_INVALID_ARGUMENT for NULL or a struct_size below 4. */
int  ijepa_encoder_options_init(ijepa_encoder_options *opts);

/* Creates an encoder from a file or a Hugging Face model directory; the format is recognised
 * from the content (a directory must hold model.safetensors and config.json; a
 * model.safetensors file next to a config.json is read with it). Sizes come from the tensors;
 * the number of heads and the LayerNorm eps from the file's metadata or config.json (or
 * opts->num_heads), with IJEPA_ERR_FORMAT naming what is missing when nothing says.
 * opts NULL: defaults. A libijepa encoder file (ijepa_encoder_save) is mapped, not read.
 * Every tensor is checked (names, shapes, finite values) before the encoder exists. On
 * success *out owns it; release it with ijepa_encoder_free. */
int  ijepa_encoder_load(const char *path, const ijepa_encoder_options *opts, ijepa_encoder **out);
/* A copy of a live model's target (IJEPA_TARGET_ENCODER) or context encoder, e.g. to evaluate
 * during training; later training steps do not change it. n_threads is the model's. */
int  ijepa_encoder_from_model(const ijepa_model *m, int which_encoder, ijepa_encoder **out);
/* Releases an encoder. NULL is a no-op. Handles are never reused: a freed one is rejected. */
void ijepa_encoder_free(ijepa_encoder *e);
/* Writes e as a libijepa encoder file at path: safetensors holding every tensor as the encoder
 * holds it, in its order (block weights in the packed layout of its products when it uses
 * one), with the heads, LayerNorm eps, source and which_encoder in "ijepa.encoder" metadata.
 * ijepa_encoder_load maps such a file instead of reading it: the weights are the file's
 * page-cache pages (shared by every process mapping it); nothing is copied or packed, and the
 * first features follow a check of the values. The load options' which_encoder does not apply
 * to it; num_heads > 0 still overrides. A packed file loads on every CPU; one saved where the
 * packed products do not apply (no AVX2, or widths not multiples of 16) holds the plain
 * layout under the official names. Atomic: a temporary file is renamed over path, so a crash
 * leaves the old file or the new one, and encoders mapping the old file keep it.
 * While an encoder maps a file, do not truncate it or rewrite it in place (replace it by
 * renaming, as this function does): the system kills a process that reads a mapped page the
 * file no longer has (SIGBUS). IJEPA_ERR_IO when the file cannot be written. */
int  ijepa_encoder_save(const ijepa_encoder *e, const char *path);

typedef struct ijepa_encoder_info {
    uint32_t struct_size;         /* sizeof(ijepa_encoder_info), set by the caller              */
    int32_t  image_size;          /* the position table's size: grid * patch_size, square       */
    int32_t  patch_size, in_chans, embed_dim, depth, num_heads, mlp_hidden;
    int32_t  source;              /* IJEPA_SOURCE_*                                             */
    int32_t  which_encoder;       /* IJEPA_TARGET_ENCODER / IJEPA_CONTEXT_ENCODER, or -1 when the
                                     file does not say (HF and timm releases were converted from
                                     the official checkpoints' context encoder)                */
    int32_t  n_threads;           /* threads used (the resolved count, never <= 0)              */
    int32_t  pos_interpolation;   /* IJEPA_POS_BICUBIC or IJEPA_POS_BICUBIC_AA (resolved)       */
    float    layer_norm_eps;      /* every LayerNorm's eps, final norm included                 */
} ijepa_encoder_info;

/* Describes the encoder: the fields out->struct_size covers (set it first, as for
 * ijepa_encoder_options_init). */
int  ijepa_encoder_get_info(const ijepa_encoder *e, ijepa_encoder_info *out);
/* Threads used by this encoder; <= 0 means all cores. */
int  ijepa_encoder_set_n_threads(ijepa_encoder *e, int32_t n_threads);
/* Tokens per image of height x width pixels: (height / patch) * (width / patch), remainders
 * dropped as the patch convolution drops them; -1 (with the last error set) if e is not a live
 * encoder or the size is smaller than one patch. */
int32_t ijepa_encoder_num_tokens(const ijepa_encoder *e, int32_t height, int32_t width);

/* Encodes images: float32 NCHW [batch][in_chans][height][width], already normalized (see
 * ijepa_preprocess_rgb8). Any height and width of at least one patch: a grid other than the
 * weights' uses the position table resized as opts->pos_interpolation said. Pixels past the
 * last whole patch are ignored. batch: 1 .. 2^20; large batches run in chunks of about 2048
 * token rows, so activations stay bounded.
 * tokens: batch * n * embed_dim floats (n = ijepa_encoder_num_tokens), after the final norm, or
 * NULL; pooled: batch * embed_dim, the mean of those tokens (the paper's evaluation feature),
 * or NULL. IJEPA_ERR_NUMERIC for NaN/Inf images; outputs are then unspecified. */
int ijepa_encoder_encode(ijepa_encoder *e, const float *images, int32_t batch, int32_t height,
                         int32_t width, float *tokens /* or NULL */, float *pooled /* or NULL */);
/* Features of the last k blocks (as ijepa_encode_layers): each block's output through the final
 * norm, averaged over the tokens, concatenated earliest block first. pooled: batch * last_k *
 * embed_dim floats, [batch][last_k][embed_dim]; last_k = 1 is ijepa_encoder_encode's pooled. */
int ijepa_encoder_encode_layers(ijepa_encoder *e, const float *images, int32_t batch, int32_t height,
                                int32_t width, int32_t last_k, float *pooled);

/* ---- preprocessing of decoded images ------------------------------------------------- */
typedef struct ijepa_preprocess {
    uint32_t struct_size;         /* sizeof(ijepa_preprocess), set by the caller                */
    int32_t  resize;              /* the shorter side is resized to this, the other keeps the
                                     aspect ratio (truncated, as torchvision's Resize(int)); 0:
                                     no resize                                                 */
    int32_t  crop;                /* then a centered crop x crop square (>= 1)                  */
    float    mean[3], std[3];     /* per channel, on values scaled to [0, 1]                   */
} ijepa_preprocess;

/* Fills *p for a model of crop x crop pixels as the usual ImageNet evaluation does:
 * resize = crop * 8 / 7 (256 for 224), ImageNet mean (0.485, 0.456, 0.406) and std
 * (0.229, 0.224, 0.225). The caller sets p->struct_size first (see ijepa_encoder_options_init);
 * crop in 1 .. 65536. */
int  ijepa_preprocess_init(ijepa_preprocess *p, int32_t crop);
/* torchvision's Resize(resize) + CenterCrop(crop) + ToTensor + Normalize(mean, std) on a PIL
 * image: rgb is height x width x 3 uint8, rows contiguous (what image decoders give); the
 * resize is antialiased bilinear as PIL's, computed in float (PIL rounds to uint8 between its
 * two passes: the results agree within 1/255 before normalization). out: 3 * crop * crop
 * floats, CHW. A crop larger than the resized image is IJEPA_ERR_INVALID_ARGUMENT (torchvision
 * would pad with zeros); std must be > 0. */
int ijepa_preprocess_rgb8(const uint8_t *rgb, int32_t height, int32_t width, const ijepa_preprocess *p,
                          float *out);

/* ---- data augmentation --------------------------------------------------------------- */
/* RandomResizedCrop with torchvision's semantics, for C users who have no torchvision: per
 * image, an area fraction uniform in [scale_min, scale_max] and an aspect ratio log-uniform in
 * [ratio_min, ratio_max], 10 attempts, then the centre-crop fallback; the crop is resized to
 * out_size x out_size bilinearly (align_corners=False, no antialias).
 * images: float32 [batch][channels][height][width]; out: [batch][channels][out_size][out_size]
 * (caller-allocated, must not overlap images). *rng_state seeds the crops and is advanced, so
 * the same state gives the same crops and consecutive calls give new ones. */
int ijepa_random_resized_crop(const float *images, int32_t batch, int32_t channels,
                              int32_t height, int32_t width, int32_t out_size,
                              float scale_min, float scale_max, float ratio_min, float ratio_max,
                              uint64_t *rng_state, float *out);
/* Bilinear resize as F.interpolate(mode="bilinear", align_corners=False, antialias=False).
 * images: [batch][channels][height][width]; out: [batch][channels][out_height][out_width]. */
int ijepa_resize_bilinear(const float *images, int32_t batch, int32_t channels,
                          int32_t height, int32_t width, int32_t out_height, int32_t out_width,
                          float *out);

/* ---- logging ------------------------------------------------------------------------- */
enum { IJEPA_LOG_DEBUG = 0, IJEPA_LOG_INFO = 1, IJEPA_LOG_WARN = 2, IJEPA_LOG_ERROR = 3 };
typedef void (*ijepa_log_callback)(int level, const char *message, void *user_data);
/* Routes the library's log messages (e.g. the mask sampler relaxing its constraints) to cb;
 * NULL restores the default (silent). message is valid only during the callback. The
 * callback may be invoked from any thread that calls into the library. A call already in
 * progress on another thread may still invoke the previous callback after ijepa_log_set
 * returns: keep the previous user_data alive until such calls have returned. */
void ijepa_log_set(ijepa_log_callback cb, void *user_data);

#ifdef __cplusplus
}
#endif
#endif /* IJEPA_H */
