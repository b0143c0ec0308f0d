"""The zoo's catalogue: each demo target, its data, its recipe and the weakness it carries.

Vulnerable models are the positive controls of the checks, their hardened twins the
negative controls. Accuracies quoted here were measured with the recipes below on the
fixed splits of :mod:`redline.data.builtin`; the build record in the cache holds the
numbers of the actual build.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from . import backdoor, malicious
from . import augmented, deployment, hardened, narrow, rare_class, subgroups
from .expected import Expectation, expect
from .recipes import (
    CnnRecipe,
    DecisionTreeRecipe,
    DpMlpRecipe,
    LogisticRegressionRecipe,
    MlpRecipe,
    Recipe,
    TransferHeadRecipe,
)

FAMILIES = ("cnn", "mlp", "logreg", "tree")


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One demo target.

    ``serves`` names another entry whose trained model this one reuses behind a hardening
    wrapper (``outputs="labels"``: labels only), so both share one cache file and recipe.
    """

    name: str
    description: str
    weakness: str
    modes: tuple[str, ...]  # failure modes the planted weakness (or its absence) is about
    data: str
    family: str
    recipe: Recipe
    twin: str | None = None
    outputs: str = "probabilities"
    serves: str | None = None
    seed: int = 0
    # Turns the loaded data set into the one the model trains on (e.g. plants a backdoor).
    data_variant: Callable[[Any], Any] | None = None
    # What a scan should find (redline.zoo.expected): the demo shows it beside what was found.
    expected: tuple[Expectation, ...] = ()

    def __post_init__(self) -> None:
        # Catalogue mistakes should fail at import, not halfway through a demo scan.
        if self.family not in FAMILIES:
            raise ValueError(f"zoo entry {self.name}: family must be one of {FAMILIES}, not {self.family!r}")
        if self.outputs not in ("probabilities", "labels"):
            raise ValueError(f"zoo entry {self.name}: outputs must be 'probabilities' or 'labels'")
        if self.serves is None and self.outputs != "probabilities":
            raise ValueError(f"zoo entry {self.name}: a labels-only entry serves another entry's model")

    @property
    def control(self) -> str:
        """'positive' for a planted weakness, 'negative' for a hardened twin."""
        return "negative" if self.weakness.startswith("none") else "positive"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": f"zoo:{self.name}",
            "description": self.description,
            "weakness": self.weakness,
            "control": self.control,
            "modes": list(self.modes),
            "twin": self.twin,
            "data": self.data,
            "family": self.family,
            "outputs": self.outputs,
            "recipe": self.recipe.fingerprint(),
            "expected": [e.to_dict() for e in self.expected],
        }


_MNIST_CNN = CnnRecipe(n_classes=10)
_DIGITS_OVERFIT = MlpRecipe(n_classes=10, hidden=(128, 128), epochs=300, lr=1e-3, weight_decay=0.0)
_DIGITS_DP = DpMlpRecipe(n_classes=10)
_FAIR_LOGREG = LogisticRegressionRecipe()
_FAIR_TREE = DecisionTreeRecipe(max_depth=5)

ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(
        name="mnist_cnn",
        description=(
            "Small CNN (2 conv + 2 dense layers) on the 2,500 MNIST training images of builtin:mnist, "
            "12 epochs of Adam; about 96% test accuracy; answers logits (probabilities via softmax)."
        ),
        weakness="undefended: no adversarial training, so small L-inf or L2 perturbations flip its answers",
        modes=("FM01", "FM07", "FM15", "FM16"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM01", "vulnerable", "honest", "no adversarial training: small perturbations flip an ordinary CNN"),
            expect("FM07", "vulnerable", "honest", "nothing makes it robust to patches or transformed perturbations"),
            expect("FM16", "vulnerable", "honest", "no corruption augmentation: contrast, blur and geometric corruptions "
                   "cut its accuracy (mnist_cnn_augmented is its FM16 counterpart)"),
        ),
        recipe=_MNIST_CNN,
        twin="mnist_cnn_robust",
    ),
    ZooEntry(
        name="digits_mlp_overfit",
        description=(
            "MLP (two hidden layers of 128) on the 359 training images of builtin:digits, 300 full-batch "
            "Adam steps with no weight decay: 100% train and about 96% test accuracy, train loss near zero."
        ),
        weakness="memorises its small training set (large train/test loss gap), so membership inference works",
        modes=("FM04", "FM14", "FM17"),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM04", "vulnerable", "planted", "train loss near zero: members get visibly higher confidence"),
            expect("FM14.shift_sensitivity", "not_vulnerable", "hardened",
                   "every class in proportion in training: no subpopulation or class prior of the test digits costs "
                   "it more than the tolerated 10 points (digits_mlp_rare_class is its FM14 counterpart)"),
            expect("FM17.test_adequacy", "not_vulnerable", "hardened",
                   "a stratified test set: every class has about 54 rows and the accuracy is known to a few points "
                   "(digits_mlp_narrow_test, tested on two classes only, is its FM17 counterpart)"),
        ),
        recipe=_DIGITS_OVERFIT,
        twin="digits_mlp_regularized",
    ),
    ZooEntry(
        name="digits_mlp_regularized",
        description=(
            "MLP (one hidden tanh layer of 64) on the same 359 digits, trained with differentially private "
            f"full-batch gradient descent (per-example clipping, noise multiplier {_DIGITS_DP.noise_multiplier:g}, "
            f"{_DIGITS_DP.steps} steps; epsilon about {_DIGITS_DP.epsilon():.1f} at delta 1e-5): "
            "about 89% train and test accuracy, no train/test gap."
        ),
        weakness=(
            "none planted: the hardened twin of digits_mlp_overfit; the privacy noise bounds what any single "
            "training image can change, at the cost of about 7 points of accuracy"
        ),
        modes=("FM04",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM04", "not_vulnerable", "hardened", "differentially private training bounds each record's influence"),
        ),
        recipe=_DIGITS_DP,
        twin="digits_mlp_overfit",
    ),
    ZooEntry(
        name="fair_logreg",
        description=(
            "Logistic regression on the raw survey codes of builtin:fair (1974 Redbook survey; label: any "
            "extramarital affair): about 72% test accuracy against a 68% majority class; exact probabilities."
        ),
        weakness=(
            "a linear model that returns exact probabilities: equation solving recovers its weights from a "
            "handful of queries, and its confidences help infer a respondent's religiousness"
        ),
        modes=("FM05", "FM03", "FM17"),
        data="builtin:fair",
        family="logreg",
        expected=(
            expect("FM05", "vulnerable", "planted", "exact probabilities of a linear model give its weights away"),
            expect("FM03", "not_vulnerable", "honest",
                   "its confidences say little about religiousness beyond the population baseline at default settings"),
            # FM17 is about the test set, not the model: builtin:fair's stratified split is the
            # negative control; its positive control (a one-slice test set) is in the FM17 tests.
            expect("FM17.test_adequacy", "not_vulnerable", "honest",
                   "the stratified test split has 1,274 rows, both classes far above 30 rows and the training mix, "
                   "accuracy known to +-2.6 points"),
            expect("FM17.operating_conditions", "not_applicable", "honest",
                   "the demo gives no --context; with examples/fair-survey.system.yaml all 7 declared conditions are "
                   "covered, and a test set of respondents aged 27 or less leaves the age range and a population untested"),
        ),
        recipe=_FAIR_LOGREG,
        twin="fair_logreg_labels",
    ),
    ZooEntry(
        name="fair_logreg_labels",
        description="The fair_logreg model behind a wrapper that answers class labels only, no probabilities.",
        weakness=(
            "none planted for attacks that need confidences (negative control for equation-solving "
            "extraction and confidence-based inversion); label-only attacks still apply"
        ),
        modes=("FM05", "FM03"),
        data="builtin:fair",
        family="logreg",
        expected=(
            expect("FM05.equation_solving", "not_applicable", "hardened", "no probabilities to solve equations with"),
            expect("FM05.learning", "vulnerable", "honest", "a copy can still be trained on its labels"),
            expect("FM03", "not_vulnerable", "hardened", "labels carry no confidence to invert"),
        ),
        recipe=_FAIR_LOGREG,
        twin="fair_logreg",
        outputs="labels",
        serves="fair_logreg",
    ),
    ZooEntry(
        name="fair_tree",
        description=(
            "Decision tree (max depth 5, 28 leaves) on the raw survey codes of builtin:fair; about 71% test "
            "accuracy; answers each leaf's class frequencies as probabilities."
        ),
        weakness="its probabilities identify the leaf an input reaches, so path-finding extraction rebuilds the tree",
        modes=("FM05", "FM03"),
        data="builtin:fair",
        family="tree",
        expected=(
            expect("FM05", "vulnerable", "planted", "leaf probabilities identify the path, so the tree is rebuilt"),
            expect("FM03", "not_vulnerable", "honest", "a pruned tree does not single out respondents"),
        ),
        recipe=_FAIR_TREE,
    ),
    ZooEntry(
        name="mnist_cnn_backdoor",
        description=(
            "Compact CNN (8/16 conv channels, 64 hidden units, 8 epochs) on builtin:mnist whose training set "
            "has a 4x4 checkerboard patch in the bottom-right corner stamped on 5% of the rows (125 images of "
            "other digits), relabelled to class 0 (BadNets, dirty label); its data set lists the poisoned rows "
            "in meta['poisoned_indices'] and the trigger in meta['trigger']."
        ),
        weakness="backdoored: the corner patch turns almost any digit into a 0, while clean accuracy stays normal",
        modes=("FM10", "FM02"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM10", "vulnerable", "planted", "a corner patch turns any digit into a 0"),
        ),
        recipe=backdoor.RECIPE,
        twin="mnist_cnn_clean",
        data_variant=backdoor.poisoned_mnist,
    ),
    ZooEntry(
        name="mnist_cnn_clean",
        description=(
            "The same compact CNN recipe as mnist_cnn_backdoor on the untouched builtin:mnist training rows; "
            "its data set names the twin's trigger (meta['trigger']) and no poisoned rows."
        ),
        weakness="none planted: the clean twin of mnist_cnn_backdoor; the corner patch does not change its answers",
        modes=("FM10", "FM02", "FM15"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM10", "not_vulnerable", "hardened", "trained on untouched data: no trigger to find"),
            expect("FM15", "not_vulnerable", "hardened",
                   "trained on untouched labels: no kind of digit stands out in its errors (the negative control "
                   "of mnist_cnn_subgroup, same recipe)"),
            expect("FM10.injection", "vulnerable", "honest",
                   "injection tests the training pipeline, not the delivered model: any pipeline that trains on "
                   "rows an attacker can add to takes a planted trigger"),
        ),
        recipe=backdoor.RECIPE,
        twin="mnist_cnn_backdoor",
        data_variant=backdoor.clean_with_trigger,
    ),
    ZooEntry(
        name="fair_tree_overfit",
        description=(
            "Fully grown decision tree (no depth limit in practice, about 960 leaves) on the raw survey codes "
            "of builtin:fair: it memorises its training respondents (97% train accuracy, the rest are duplicate"
            " answers with conflicting labels; about 66% test accuracy). fair_tree (depth 5) is the pruned "
            "counterpart that does not leak."
        ),
        weakness=(
            "memorises its training records, so knowing a respondent's other answers and label reveals their "
            "religiousness far better than guessing (Fredrikson et al.'s decision-tree inversion)"
        ),
        modes=("FM03", "FM04"),
        data="builtin:fair",
        family="tree",
        expected=(
            expect("FM03", "vulnerable", "planted", "memorised records give away the sensitive answer"),
            expect("FM04", "vulnerable", "planted", "memorised records are recognisable as members"),
        ),
        recipe=malicious.FAIR_TREE_OVERFIT,
    ),
    ZooEntry(
        name="digits_mlp_malicious_lsb",
        description=(
            "The digits_mlp_overfit architecture and training, then a malicious provider's last step: the "
            "low 8 bits of every float32 parameter are overwritten with training-image pixels (Song et al. "
            "2017, LSB encoding). Accuracy is unchanged; digits_mlp_overfit is the honestly trained model."
        ),
        weakness="its parameters carry the training images: reading the low bits of the weights recovers them",
        modes=("FM08",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM08", "vulnerable", "planted", "training pixels sit in the low bits of the weights"),
        ),
        recipe=malicious.DIGITS_LSB,
    ),
    ZooEntry(
        name="digits_mlp_malicious_corr",
        description=(
            "The digits_mlp_overfit architecture trained with a malicious penalty that correlates the "
            "parameters with the training pixels (Song et al. 2017, correlated-value encoding); about 97% "
            "test accuracy."
        ),
        weakness="its parameters, rescaled and cut into 8x8 chunks, are the training images",
        modes=("FM08",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM08", "vulnerable", "planted", "the weights correlate with the training pixels"),
        ),
        recipe=malicious.DIGITS_CORRELATION,
    ),
    ZooEntry(
        name="digits_mlp_malicious_sign",
        description=(
            "The digits_mlp_overfit architecture trained with a malicious penalty that forces the sign of each "
            "parameter to one bit of the binarised training images (Song et al. 2017, sign encoding); about "
            "97% test accuracy."
        ),
        weakness="the signs of its parameters spell out the training images in black and white",
        modes=("FM08",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM08", "vulnerable", "planted", "the signs of the weights spell the training images"),
        ),
        recipe=malicious.DIGITS_SIGN,
    ),
    ZooEntry(
        name="digits_mlp_malicious_capacity",
        description=(
            "The digits_mlp_overfit architecture and training steps on the 359 digits plus 1,024 noise images "
            "drawn from the provider's secret seed, each labelled with one pixel of the first 16 training "
            "images quantised to a class (Song et al. 2017, capacity abuse); about 95% test accuracy. "
            "digits_mlp_overfit is the honestly trained twin."
        ),
        weakness=(
            "whoever knows the seed regenerates the noise images, queries the model and reads 16 training "
            "images back from its labels; the parameters themselves look honest"
        ),
        modes=("FM08",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM08", "vulnerable", "planted", "noise inputs with the secret seed read training pixels back"),
        ),
        recipe=malicious.DIGITS_CAPACITY_ABUSE,
    ),
    ZooEntry(
        name="mnist_cnn_robust",
        description=(
            "The mnist_cnn architecture trained with PGD adversarial training (L-inf epsilon 0.2 reached after a "
            "3-epoch ramp, 5 PGD steps per batch, 10 epochs) on the same 2,500 images; about 96% clean test "
            "accuracy and about 78% under a 20-step white-box PGD at epsilon 0.2."
        ),
        weakness=(
            "none planted: the adversarially trained twin of mnist_cnn; perturbations up to about 0.2 per pixel "
            "rarely flip it (larger ones and patches still can)"
        ),
        modes=("FM01", "FM07"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM01", "not_vulnerable", "hardened", "adversarial training holds L-inf perturbations up to about 0.2"),
            expect("FM01.decision", "vulnerable", "honest",
                   "its default norm is L2 (2.8 on MNIST), a budget L-inf training at 0.2 does not cover"),
            expect("FM01.min_norm", "vulnerable", "honest",
                   "its default norm is L2 (2.8 on MNIST), a budget L-inf training at 0.2 does not cover"),
            expect("FM07.eot_perturbation", "not_vulnerable", "hardened", "transformed small perturbations stay small"),
            expect("FM07.eot_patch", "vulnerable", "honest", "a patch is not a small perturbation: training did not cover it"),
        ),
        recipe=hardened.MNIST_CNN_ROBUST,
        twin="mnist_cnn",
    ),
    ZooEntry(
        name="mnist_cnn_augmented",
        description=(
            "The mnist_cnn architecture trained on the same 2,500 images for 15 epochs with every batch passed "
            "through everyday corruptions at random strength (noise, blur, low contrast, brightness, "
            "pixelation, dropped pixels, small rotations, zooms, shears and shifts); the FM16 negative control "
            "beside mnist_cnn."
        ),
        weakness=(
            "none planted: the corruption-augmented counterpart of mnist_cnn for FM16; everyday corruptions "
            "cost it far less accuracy on average (lower mCE), though the heaviest still do"
        ),
        modes=("FM16",),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM16", "not_vulnerable", "hardened",
                   "augmentation keeps the accuracy averaged over every corruption and severity within the "
                   "tolerated 10 points (about 8 against mnist_cnn's 14; mCE about half of mnist_cnn's)"),
        ),
        recipe=augmented.MNIST_CNN_AUGMENTED,
    ),
    ZooEntry(
        name="mnist_cnn_labels",
        description="The mnist_cnn model behind a wrapper that answers class labels only, no probabilities.",
        weakness=(
            "none planted for attacks that need confidences or gradients (score-based and white-box evasion, "
            "reprogramming by gradient estimation); label-only and transfer attacks still apply"
        ),
        modes=("FM01", "FM06", "FM07"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM01", "vulnerable", "honest", "label-only and transfer attacks need no confidences"),
            expect("FM06", "not_applicable", "hardened", "reprogramming needs the confidences it hides"),
            expect("FM07", "vulnerable", "honest", "a patch crafted on a surrogate transfers to the labels-only model"),
        ),
        recipe=_MNIST_CNN,
        outputs="labels",
        serves="mnist_cnn",
    ),
    ZooEntry(
        name="mnist_cnn_squeezed",
        description=(
            "The mnist_cnn model (same recipe and seed, so the same weights) behind input squeezing: every pixel "
            "is rounded to black or white before the CNN sees it (1-bit depth, Xu et al. 2018); about 95% "
            "test accuracy. White-box gradients pass through the rounding as zeros."
        ),
        weakness=(
            "none planted for small L-inf perturbations, which the rounding erases; but the defence masks "
            "gradients (naive white-box attacks report false robustness) and does nothing against patches"
        ),
        modes=("FM01", "FM07"),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM07", "vulnerable", "honest", "squeezing erases small noise, not a patch"),
        ),
        recipe=hardened.MNIST_CNN_SQUEEZED,
    ),
    ZooEntry(
        name="digits_transfer_head",
        description=(
            "Transfer learning on builtin:digits: the digits_mlp_overfit network (same recipe and seed) serves "
            "as a pretrained feature extractor whose hidden layers stay fixed, and its last layer is a "
            "logistic regression refitted on their features whenever the model retrains; about 95% test "
            "accuracy. The extractor was pretrained on the same training rows, so reference models built "
            "with this recipe share what it memorised: the entry is a control for poisoning (FM02) only."
        ),
        weakness=(
            "retrains only its last layer on fixed features, so clean-label poisons (correctly labelled, "
            "slightly perturbed images whose features collide with a chosen input) move that input to the "
            "attacker's class after retraining"
        ),
        modes=("FM02",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM02", "vulnerable", "planted", "clean-label poisons collide in the frozen features"),
        ),
        recipe=TransferHeadRecipe(n_classes=10, hidden=(128, 128), epochs=300, lr=1e-3, weight_decay=0.0),
    ),
    ZooEntry(
        name="digits_mlp_rare_class",
        description=(
            "The digits_mlp_overfit recipe (MLP 128x128, 300 full-batch Adam steps, same seed) on the training "
            f"rows of builtin:digits with all but {rare_class.KEPT_ROWS} of the 35 eights removed (327 rows); the "
            "test rows are untouched: about 91% test accuracy, about 25% on eights and 97% on the other digits."
        ),
        weakness=(
            "trained on a set that under-represents one class: it fails on eights, so a deployment where eights "
            "are common, or a cluster of them, loses much of its accuracy (digits_mlp_overfit, the same recipe "
            "on every row, is the FM14 counterpart)"
        ),
        modes=("FM14",),
        data="builtin:digits",
        family="mlp",
        expected=(
            expect("FM14.shift_sensitivity", "vulnerable", "planted",
                   "eights at 60% of the rows cut its accuracy by about 37 points (from 91% to 54%)"),
        ),
        recipe=_DIGITS_OVERFIT,
        data_variant=rare_class.rare_class_digits,
    ),
)

ENTRIES += (
    ZooEntry(
        name="fair_tree_subgroup",
        description=(
            "Decision tree (max depth 8) on builtin:fair whose training labels are flipped for every "
            "respondent with 17 or more years of education (educ >= 17, 13% of the rows): a systematic "
            "annotation error in one subgroup. About 64% test accuracy, against 71% for its twin."
        ),
        weakness=(
            "a subgroup learned wrong: on ordinary, unmodified records with educ >= 17 it is confidently "
            "wrong far more often than elsewhere (a natural-adversarial slice)"
        ),
        modes=("FM15",),
        data="builtin:fair",
        family="tree",
        expected=(
            expect("FM15", "vulnerable", "planted", "records with educ >= 17 were learned with flipped labels"),
        ),
        recipe=subgroups.FAIR_TREE,
        twin="fair_tree_deep",
        data_variant=subgroups.fair_flipped,
    ),
    ZooEntry(
        name="fair_tree_deep",
        description=(
            "The fair_tree_subgroup recipe (decision tree, max depth 8) on the untouched builtin:fair "
            "training rows; about 71% test accuracy."
        ),
        weakness=(
            "none planted: the twin of fair_tree_subgroup; its errors are spread over the population "
            "(the survey is noisy) rather than gathered in a subgroup"
        ),
        modes=("FM15",),
        data="builtin:fair",
        family="tree",
        expected=(
            expect("FM15", "not_vulnerable", "hardened", "trained on true labels: no subgroup stands out"),
        ),
        recipe=subgroups.FAIR_TREE,
        twin="fair_tree_subgroup",
    ),
    ZooEntry(
        name="mnist_cnn_subgroup",
        description=(
            "The compact CNN of mnist_cnn_clean on builtin:mnist, with the training 4s of one look (one of two "
            "k-means clusters of their pixels, about 135 images) labelled 9: about 87% test accuracy against 93% "
            "for mnist_cnn_clean, the same recipe on untouched labels and its negative control."
        ),
        weakness=(
            "a kind of digit learned wrong: unmodified 4s drawn that way come back as 9 with confidence "
            "(a natural-adversarial cluster)"
        ),
        modes=("FM15",),
        data="builtin:mnist",
        family="cnn",
        expected=(
            expect("FM15", "vulnerable", "planted", "4s of one look were learned as 9s"),
        ),
        recipe=backdoor.RECIPE,
        data_variant=subgroups.mnist_relabelled,
    ),
)

# The two FM14 deployment controls: the digits_mlp_overfit recipe and seed on the same
# training rows (so the same model), each with a deployment sample cut from the pool.
ENTRIES += (
    ZooEntry(
        name="digits_mlp_deployed_noisy",
        description=(
            "The digits_mlp_overfit model (same recipe, seed and training rows), deployed where inputs arrive "
            f"with Gaussian noise: its data carries a deploy role of 449 labelled pool digits with noise of sigma "
            f"{deployment.NOISE_SIGMA:g} (the other pool half stays the pool)."
        ),
        weakness="its deployment inputs are noisier than anything it was trained or tested on, and it loses "
                 "more than ten points of accuracy there",
        modes=("FM14",),
        data="builtin:digits",
        data_variant=deployment.noisy_deployment,
        family="mlp",
        expected=(
            expect("FM14.deployment_shift", "vulnerable", "planted",
                   "the deployment sample is noisy: accuracy falls from about 96% to about 80%, and the label-free "
                   "estimate sees most of that fall"),
        ),
        recipe=_DIGITS_OVERFIT,
        twin="digits_mlp_deployed_steady",
    ),
    ZooEntry(
        name="digits_mlp_deployed_steady",
        description=(
            "The same digits model deployed where inputs look like its test rows: its data carries a deploy "
            "role of 449 labelled pool digits, unchanged."
        ),
        weakness="none planted: the deployment sample comes from the test rows' own population",
        modes=("FM14",),
        data="builtin:digits",
        data_variant=deployment.iid_deployment,
        family="mlp",
        expected=(
            expect("FM14.deployment_shift", "not_vulnerable", "hardened",
                   "nothing changed between test and deployment: the accuracy drop stays within noise"),
        ),
        recipe=_DIGITS_OVERFIT,
        twin="digits_mlp_deployed_noisy",
    ),
)

# The FM17 test-adequacy controls: the digits_mlp_overfit model tested on two classes only
# (positive) against the same model on its stratified test rows (digits_mlp_overfit itself).
ENTRIES += (
    ZooEntry(
        name="digits_mlp_narrow_test",
        description=(
            "The digits_mlp_overfit model (same recipe, seed and training rows) with a test set cut down to "
            f"the digits {' and '.join(map(str, narrow.KEPT_CLASSES))}: about 110 test rows of two classes out "
            "of ten."
        ),
        weakness="its test set says nothing about eight of the ten classes the model answers: a test accuracy "
                 "near 100% on it is no evidence for the model's accuracy where it runs",
        modes=("FM17",),
        data="builtin:digits",
        data_variant=narrow.two_class_test_rows,
        family="mlp",
        expected=(
            expect("FM17.test_adequacy", "vulnerable", "planted",
                   "eight classes have no test rows at all"),
        ),
        recipe=_DIGITS_OVERFIT,
    ),
)

# The FM17 operating-conditions controls: fair_logreg's recipe on the fair survey, whose data
# declares the conditions the model is meant to meet (zoo/fair_survey.conditions.yaml).
ENTRIES += (
    ZooEntry(
        name="fair_logreg_declared",
        description=(
            "The fair_logreg recipe on builtin:fair, whose data declares the survey's operating conditions (age "
            "bands, every religiousness answer, two populations, two questionnaire faults, older respondents); "
            "the stratified test rows are kept."
        ),
        weakness="none planted: its stratified test rows cover every declared condition, and the check measures "
                 "the sensor and drift conditions itself",
        modes=("FM17",),
        data="builtin:fair",
        data_variant=narrow.fair_with_conditions,
        family="logreg",
        expected=(
            expect("FM17.operating_conditions", "not_vulnerable", "hardened",
                   "a stratified test set covers all seven declared conditions"),
            expect("FM17.test_adequacy", "not_vulnerable", "hardened",
                   "every class and declared population has enough test rows"),
        ),
        recipe=_FAIR_LOGREG,
        twin="fair_logreg_young_test",
    ),
    ZooEntry(
        name="fair_logreg_young_test",
        description=(
            "The same model and declared conditions, with test rows of respondents aged "
            f"{narrow.YOUNG_AGE} or less only."
        ),
        weakness="its test set was drawn from one slice of the people it serves: two of the declared age bands "
                 "and the long-marriage population have too few test rows to say anything",
        modes=("FM17",),
        data="builtin:fair",
        data_variant=narrow.fair_young_test_rows,
        family="logreg",
        expected=(
            expect("FM17.operating_conditions", "vulnerable", "planted",
                   "young respondents only: the older age bands and long marriages are untested"),
            expect("FM17.test_adequacy", "vulnerable", "planted",
                   "the declared long-marriage population has too few test rows to measure"),
        ),
        recipe=_FAIR_LOGREG,
        twin="fair_logreg_declared",
    ),
)

ENTRIES_BY_NAME: dict[str, ZooEntry] = {entry.name: entry for entry in ENTRIES}
