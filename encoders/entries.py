"""The registry entries of `e4e`, `psp`, `restyle_psp`, `restyle_e4e` and `hyperstyle` (read by
`e4e_bench.methods` on first use)."""

from e4e_bench.methods.contract import Dial, MethodEntry

TRAINER = "encoders.training.setup:run_training"
TRAIN_OPTIONS = "encoders.training.options:TrainOptions"
CHECKPOINT_FORMATS = ("e4e-psp-checkpoint",)  # the official files, and those `train` writes
SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


def scales(_options) -> tuple[float, ...]:
    return SCALES


def unit_scale(_options) -> float:
    return 1.0


def every_iteration(options) -> tuple[float, ...]:
    return tuple(range(1, options.iterations + 1))


def all_iterations(options) -> float:
    return options.iterations


ITERATIONS = Dial("iterations", every_iteration, all_iterations)  # the points of one refinement loop


def no_pass_then_every_pass(options) -> tuple[float, ...]:
    return (0.0, *every_iteration(options))


ENTRIES = (
    MethodEntry(
        name="e4e",
        factory="encoders.method:build_e4e",
        options="encoders.method:EncoderOptions",
        summary="encoder for editing (Tov et al. 2021): one pass to W+ codes kept near W",
        checkpoint_formats=CHECKPOINT_FORMATS,
        checkpoint_assets={"faces": "e4e-ffhq", "cars": "e4e-cars", "horse": "e4e-horse", "church": "e4e-church",
                           "toy": "toy-e4e"},
        trainer=TRAINER,
        train_options=TRAIN_OPTIONS,
        dial=Dial("offset scale", scales, unit_scale),  # 0: its base code w for every layer; 1: its codes
    ),
    MethodEntry(
        name="psp",
        factory="encoders.method:build_psp",
        options="encoders.method:EncoderOptions",
        summary="pixel2style2pixel (Richardson et al. 2021): one pass to free W+ codes",
        checkpoint_formats=CHECKPOINT_FORMATS,
        checkpoint_assets={"faces": "psp-ffhq", "toy": "toy-psp"},
        trainer=TRAINER,
        train_options=TRAIN_OPTIONS,
        dial=Dial("spread scale", scales, unit_scale),  # 0: the mean of its rows for every layer; 1: its codes
    ),
    MethodEntry(
        name="restyle_psp",
        factory="encoders.restyle_method:build_restyle_psp",
        options="encoders.restyle_method:ReStyleOptions",
        summary="ReStyle-pSp (Alaluf et al. 2021): an encoder that refines its own codes over a few steps",
        checkpoint_formats=CHECKPOINT_FORMATS,
        checkpoint_assets={"faces": "restyle-psp-ffhq", "cars": "restyle-psp-cars", "church": "restyle-psp-church",
                           "toy": "toy-restyle-psp"},
        trainer=TRAINER,
        train_options=TRAIN_OPTIONS,
        dial=ITERATIONS,
    ),
    MethodEntry(
        name="restyle_e4e",
        factory="encoders.restyle_method:build_restyle_e4e",
        options="encoders.restyle_method:ReStyleOptions",
        summary="ReStyle-e4e: ReStyle's refinement with e4e's encoder (codes kept near W)",
        checkpoint_formats=CHECKPOINT_FORMATS,
        checkpoint_assets={"faces": "restyle-e4e-ffhq", "cars": "restyle-e4e-cars", "church": "restyle-e4e-church",
                           "horse": "restyle-e4e-horse", "toy": "toy-restyle-e4e"},
        trainer=TRAINER,
        train_options=TRAIN_OPTIONS,
        dial=ITERATIONS,
    ),
    MethodEntry(
        name="hyperstyle",
        factory="encoders.hyperstyle_method:build_hyperstyle",
        options="encoders.hyperstyle_method:HyperStyleOptions",
        summary="HyperStyle (Alaluf et al. 2022): a W encoder's codes, and per-image generator weight offsets "
                "refined by a hypernetwork over a few passes",
        checkpoint_formats=("hyperstyle-checkpoint",),
        checkpoint_assets={"faces": "hyperstyle-faces", "cars": "hyperstyle-cars", "toy": "toy-hyperstyle"},
        trainer=TRAINER,
        train_options=TRAIN_OPTIONS,
        # 0: the W encoder alone; the codes never move, only the offsets
        dial=Dial("hypernetwork passes", no_pass_then_every_pass, all_iterations, moves_codes=False),
    ),
)
