"""The pickle policy as data: which globals real model files need, and which are known to be dangerous.

Allowlist rows: ``(module, qualname, use, reason)``. ``use`` says how the loaded object may
be used by the stream (see ``policy.USES``):

- ``class``: a class that may be constructed (REDUCE/INST/OBJ call ``__init__``; NEWOBJ only
  ``__new__``) and whose instances take a BUILD state;
- ``new-only``: a class that may only be created without running ``__init__`` (NEWOBJ or
  ``copyreg._reconstructor``), then given a state by BUILD;
- ``function``: a callable whose arguments need no check;
- ``checked``: a callable allowed only with the arguments its checker accepts
  (``policy.CHECKERS`` holds one checker per row);
- ``reference``: an object that may be passed around (e.g. a dtype) but not called.

Prefix rows in ``ALLOWED_CLASS_PREFIXES`` admit the classes of a library (CamelCase names
under a module prefix) as ``new-only``; ``BLOCKED_PREFIXES`` carves dangerous submodules out.

Deny rows: ``(module, qualname or "*", category, reason)``. A denied global is Critical; any
other global that is not allowed is High ("unknown callable"). Both make the file unsafe.
"""
from __future__ import annotations

ALLOWED: tuple[tuple[str, str, str, str], ...] = (
    # --- Python builtins used by ordinary containers and copyreg ---
    ("collections", "OrderedDict", "class", "ordered mapping; state_dicts are OrderedDicts"),
    ("builtins", "set", "class", "set literal in protocols < 4"),
    ("builtins", "frozenset", "class", "frozenset literal in protocols < 4"),
    ("builtins", "slice", "class", "slice objects (e.g. index expressions in configs)"),
    ("builtins", "complex", "class", "complex number literal"),
    ("builtins", "bytearray", "class", "bytearray literal in protocols < 5"),
    ("builtins", "range", "class", "range literal"),
    ("builtins", "bytes", "class", "bytes literal in protocol 2 (via _codecs.encode or directly)"),
    ("builtins", "object", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "dict", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "list", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "int", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "float", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "str", "reference", "base class argument of copyreg._reconstructor"),
    ("builtins", "tuple", "reference", "base class argument of copyreg._reconstructor"),
    ("copyreg", "_reconstructor", "checked", "protocol 0/1 object creation; only for allowed classes"),
    ("copyreg", "__newobj__", "checked", "object creation without __init__; only for allowed classes"),
    ("copyreg", "__newobj_ex__", "checked", "object creation without __init__; only for allowed classes"),
    ("_codecs", "encode", "checked", "numpy stores raw bytes as latin-1 text in protocol 2; only (str, 'latin1')"),
    # --- numpy array reconstruction ---
    ("numpy", "ndarray", "class", "array class passed to _reconstruct"),
    ("numpy", "dtype", "class", "array element type"),
    ("numpy", "matrix", "class", "matrix subclass of ndarray"),
    ("numpy.matrixlib.defmatrix", "matrix", "class", "matrix subclass of ndarray"),
    ("numpy.ma.core", "MaskedArray", "class", "masked array class"),
    ("numpy.ma.core", "_mareconstruct", "checked", "masked array reconstruction; only for array classes"),
    ("numpy.ma", "MaskedArray", "class", "masked array class (public alias)"),
    ("numpy.ma.core", "MaskedConstant", "new-only", "the numpy.ma.masked singleton's class"),
    ("numpy", "recarray", "class", "record array subclass of ndarray"),
    ("numpy.rec", "recarray", "class", "record array subclass of ndarray"),
    ("numpy.core.records", "recarray", "class", "record array subclass of ndarray (numpy 1.x)"),
    ("numpy._core.records", "recarray", "class", "record array subclass of ndarray (numpy 2.x)"),
    ("numpy", "record", "class", "record scalar type"),
    ("numpy.rec", "record", "class", "record scalar type"),
    ("numpy.core.records", "record", "class", "record scalar type (numpy 1.x)"),
    ("numpy._core.records", "record", "class", "record scalar type (numpy 2.x)"),
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray", "reference",
     "array constructor a scipy BSpline keeps as its array namespace hook; held, not called"),
    ("numpy._core._internal", "_convert_to_stringdtype_kwargs", "function",
     "StringDType from its (coerce, na_object) options; returns a dtype"),
    ("numpy.core.multiarray", "_reconstruct", "checked", "ndarray reconstruction (numpy 1.x); only for array classes"),
    ("numpy._core.multiarray", "_reconstruct", "checked", "ndarray reconstruction (numpy 2.x); only for array classes"),
    ("numpy.core.multiarray", "scalar", "function", "numpy scalar from dtype and raw bytes"),
    ("numpy._core.multiarray", "scalar", "function", "numpy scalar from dtype and raw bytes"),
    ("numpy.core.numeric", "_frombuffer", "function", "protocol 5 out-of-band array rebuild"),
    ("numpy._core.numeric", "_frombuffer", "function", "protocol 5 out-of-band array rebuild"),
    ("numpy.core._multiarray_umath", "_reconstruct", "checked", "ndarray reconstruction alias"),
    ("numpy._core._multiarray_umath", "_reconstruct", "checked", "ndarray reconstruction alias"),
    ("numpy.core", "_ufunc_reconstruct", "checked", "ufunc reference; only numpy modules"),
    ("numpy._core", "_ufunc_reconstruct", "checked", "ufunc reference; only numpy modules"),
    # --- numpy random state (estimators keep a RandomState) ---
    ("numpy.random._pickle", "__randomstate_ctor", "checked", "RandomState from a bit-generator name"),
    ("numpy.random._pickle", "__bit_generator_ctor", "checked", "bit generator from its name"),
    ("numpy.random._pickle", "__generator_ctor", "checked", "Generator from a bit-generator name"),
    ("numpy.random", "__RandomState_ctor", "checked", "RandomState constructor alias; calls its second argument"),
    ("numpy.random.mtrand", "RandomState", "class", "legacy random state"),
    ("numpy.random._generator", "Generator", "class", "random generator"),
    ("numpy.random._mt19937", "MT19937", "class", "Mersenne Twister bit generator"),
    ("numpy.random._pcg64", "PCG64", "class", "PCG64 bit generator"),
    ("numpy.random._pcg64", "PCG64DXSM", "class", "PCG64DXSM bit generator"),
    ("numpy.random._philox", "Philox", "class", "Philox bit generator"),
    ("numpy.random._sfc64", "SFC64", "class", "SFC64 bit generator"),
    ("numpy.random.bit_generator", "SeedSequence", "new-only", "seed sequence of a bit generator"),
    # --- PyTorch tensors and storages ---
    ("torch._utils", "_rebuild_tensor", "function", "tensor from storage (old)"),
    ("torch._utils", "_rebuild_tensor_v2", "checked", "tensor from storage; backward hooks must be empty"),
    ("torch._utils", "_rebuild_tensor_v3", "checked", "tensor from storage with dtype; backward hooks must be empty"),
    ("torch._utils", "_rebuild_parameter", "checked", "nn.Parameter from tensor; backward hooks must be empty"),
    ("torch._utils", "_rebuild_parameter_with_state", "checked", "nn.Parameter with attributes; plain names only"),
    ("torch._utils", "_rebuild_sparse_tensor", "function", "sparse tensor"),
    ("torch._utils", "_rebuild_qtensor", "checked", "quantized tensor; backward hooks must be empty"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage", "function", "meta tensor"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy", "function", "tensor from a numpy array"),
    ("torch._utils", "_rebuild_wrapper_subclass", "function", "tensor wrapper subclass shell"),
    ("torch._utils", "_rebuild_nested_tensor", "function", "nested tensor"),
    ("torch._tensor", "_rebuild_from_type_v2", "checked", "tensor subclass rebuild; only allowed rebuild functions"),
    ("torch._tensor", "_rebuild_from_type", "checked", "tensor subclass rebuild; only allowed rebuild functions"),
    ("torch", "Tensor", "reference", "tensor class passed to rebuild helpers"),
    ("torch.storage", "UntypedStorage", "class", "byte storage of dtypes without a typed storage class"),
    ("torch.serialization", "_get_layout", "checked", "looks a tensor layout up by its name; only layout names"),
    ("torch", "Size", "class", "tensor shape"),
    ("torch", "device", "class", "device name"),
    ("torch.nn.parameter", "Parameter", "class", "trainable tensor"),
    ("torch.jit._pickle", "build_intlist", "function", "TorchScript list helper"),
    ("torch.jit._pickle", "build_doublelist", "function", "TorchScript list helper"),
    ("torch.jit._pickle", "build_boollist", "function", "TorchScript list helper"),
    ("torch.jit._pickle", "build_tensorlist", "function", "TorchScript list helper"),
    ("torch.jit._pickle", "build_complexlist", "function", "TorchScript list helper"),
    ("torch.jit._pickle", "build_tensor_from_id", "function", "TorchScript tensor table lookup"),
    ("torch.jit._pickle", "restore_type_tag", "function", "TorchScript container type tag"),
    # --- joblib ---
    ("joblib.numpy_pickle", "NumpyArrayWrapper", "new-only", "placeholder for an array written after the pickle"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper", "new-only", "old vendored joblib"),
)

# torch.<X>Storage classes name the element type of raw storage bytes (bytes per element).
TORCH_STORAGE_SIZES: dict[str, int] = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1, "Float8_e4m3fnStorage": 1, "Float8_e5m2Storage": 1,
}

# torch dtype / layout / memory-format objects appear as plain references (``torch float32``).
TORCH_REFERENCES: frozenset[str] = frozenset(
    ["float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32", "int", "int16", "short", "int8", "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "cfloat", "complex128", "cdouble", "complex32", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn", "contiguous_format", "channels_last", "channels_last_3d", "preserve_format", "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric", "per_channel_affine_float_qparams", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "int1", "int2", "int3", "int4", "int5", "int6", "int7", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7", "complex32", "chalf"]
)

# numpy scalar types appear as references (e.g. an estimator's ``dtype=np.float64``).
NUMPY_SCALAR_TYPES: frozenset[str] = frozenset(
    ["bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intp", "uintp", "float16", "float32", "float64", "longdouble", "complex64", "complex128", "clongdouble", "str_", "bytes_", "object_", "datetime64", "timedelta64", "void", "generic", "number", "integer", "signedinteger", "unsignedinteger", "floating", "complexfloating"]
)

# Library classes (CamelCase names under these modules) may be created without __init__ and
# given a state: this is how scikit-learn estimators and torch modules are pickled.
ALLOWED_CLASS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("sklearn.", "scikit-learn estimator, transformer or helper class"),
    ("torch.nn.modules.", "torch.nn layer class"),
)

# numpy ufuncs: pure element-wise math. A model may hold them (``FunctionTransformer(np.log1p)``)
# and ``numpy.core._ufunc_reconstruct`` may name them; nothing else may be reached that way.
NUMPY_UFUNCS: frozenset[str] = frozenset(
    "abs absolute acos acosh add arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh atan atan2 "
    "atanh bitwise_and bitwise_count bitwise_invert bitwise_left_shift bitwise_not bitwise_or "
    "bitwise_right_shift bitwise_xor cbrt ceil conj conjugate copysign cos cosh deg2rad degrees divide divmod "
    "equal exp exp2 expm1 fabs float_power floor floor_divide fmax fmin fmod frexp gcd greater greater_equal "
    "heaviside hypot invert isfinite isinf isnan isnat lcm ldexp left_shift less less_equal log log10 log1p "
    "log2 logaddexp logaddexp2 logical_and logical_not logical_or logical_xor matmul matvec maximum minimum "
    "mod modf multiply negative nextafter not_equal positive pow power rad2deg radians reciprocal remainder "
    "right_shift rint sign signbit sin sinh spacing sqrt square subtract tan tanh true_divide trunc vecdot "
    "vecmat".split())
# Modules whose ufuncs ``_ufunc_reconstruct`` may name (the module a ufunc reports).
NUMPY_UFUNC_MODULES: frozenset[str] = frozenset(
    ["numpy", "numpy.core.umath", "numpy._core.umath", "numpy.core._multiarray_umath",
     "numpy._core._multiarray_umath"])

# numpy reductions and statistics held by estimators as parameters (FeatureAgglomeration's
# ``pooling_func=np.mean``): pure functions of an array, kept as references, never called by
# the stream.
NUMPY_PURE_FUNCTIONS: frozenset[str] = frozenset(
    "mean median average sum prod max min amax amin ptp std var nanmean nanmedian nansum nanprod nanmax "
    "nanmin nanstd nanvar percentile quantile nanpercentile nanquantile cumsum cumprod argmax argmin all any "
    "round around clip sort argsort unique".split())

# scikit-learn modules whose functions estimators keep as parameters (score functions, metrics,
# k-means variants). Their lower-case names are admitted as references: held by the object,
# never called while loading.
SKLEARN_FUNCTION_MODULES: tuple[str, ...] = (
    "sklearn.feature_selection._univariate_selection", "sklearn.feature_selection._mutual_info",
    "sklearn.metrics", "sklearn.cluster._kmeans", "sklearn.neighbors._base",
)

# scipy containers kept by estimators (sparse matrices, splines): created without __init__,
# then given their state.
SCIPY_CLASSES: tuple[tuple[str, str], ...] = tuple(
    (module, name)
    for module, names in {
        "scipy.sparse._csr": "csr_matrix csr_array", "scipy.sparse._csc": "csc_matrix csc_array",
        "scipy.sparse._coo": "coo_matrix coo_array", "scipy.sparse._bsr": "bsr_matrix bsr_array",
        "scipy.sparse._dia": "dia_matrix dia_array", "scipy.sparse._lil": "lil_matrix lil_array",
        "scipy.sparse._dok": "dok_matrix dok_array", "scipy.interpolate._bsplines": "BSpline",
        "scipy.sparse.csr": "csr_matrix", "scipy.sparse.csc": "csc_matrix", "scipy.sparse.coo": "coo_matrix",
    }.items()
    for name in names.split())

# scikit-learn's Cython extension modules: every CamelCase name they hold is a cdef class whose
# pickle calls the class with numeric arguments (``Hinge(1.0)``, ``CyHalfSquaredError()``).
SKLEARN_CYTHON_CALLED_MODULES: tuple[str, ...] = (
    "sklearn._loss._loss", "sklearn.linear_model._sgd_fast", "sklearn.utils._weight_vector",
    "sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree",
)
# ``newObj(cls)`` helpers of scikit-learn's Cython modules (neighbour trees, distance metrics):
# ``cls.__new__(cls)``, accepted only for a class of the same module.
SAME_MODULE_NEW_HELPERS: tuple[tuple[str, str], ...] = (("sklearn.", "newObj"),)  # (module prefix, name)

# Library classes that are rebuilt by calling them with arguments (their __reduce__ says so).
ALLOWED_CALLED_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("sklearn.tree._tree", "Tree", "decision tree structure rebuilt from (n_features, n_classes, n_outputs)"),
    ("sklearn._loss.link", "Interval", "dataclass of interval bounds"),
)

# Cython's generated ``__pyx_unpickle_<Class>`` helpers: allowed in these module prefixes, and
# only when their first argument is an allowed class.
CYTHON_UNPICKLE_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.random.")

BLOCKED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("sklearn.utils._testing", "test helpers run subprocesses and create files"),
    ("sklearn.utils._show_versions", "inspects the environment"),
    ("sklearn.datasets", "downloads and reads files"),
    ("sklearn.externals", "vendored third-party code"),
    ("sklearn.conftest", "test configuration"),
    ("sklearn.tests", "test code"),
    ("sklearn.callback", "progress and transport helpers re-export threads, sockets and connections"),
    ("sklearn.utils.discovery", "walks package files (re-exports pathlib.Path)"),
    ("sklearn.utils.estimator_checks", "test helpers"),
    ("sklearn.utils._test_common", "test helpers"),
    ("sklearn.utils._repr_html", "HTML rendering helpers (re-export pathlib.Path, StringIO)"),
    ("sklearn.tree._export", "export helpers write files (re-export StringIO)"),
)

# --- what is known to be dangerous, with the reason shown to the user ---
PROCESS = "runs operating-system commands"
EVAL = "evaluates or compiles code"
IMPORT = "imports arbitrary modules"
FILEIO = "reads or writes files"
NETWORK = "opens network connections"
NESTED = "deserialises nested data (a second, unscanned pickle)"
GADGET = "reaches arbitrary attributes or calls (a gadget that can reach any function)"
DEBUG = "runs code through a profiler, debugger or test harness"
PACKAGE = "installs or builds packages"
NATIVE = "calls native code or manipulates memory"
INTERPRETER = "changes or exposes interpreter state"

DENIED: tuple[tuple[str, str, str, str], ...] = (
    ("os", "*", "process", PROCESS), ("posix", "*", "process", PROCESS), ("nt", "*", "process", PROCESS),
    ("subprocess", "*", "process", PROCESS), ("pty", "*", "process", PROCESS),
    ("commands", "*", "process", PROCESS), ("popen2", "*", "process", PROCESS),
    ("_posixsubprocess", "*", "process", PROCESS), ("multiprocessing", "*", "process", PROCESS),
    ("asyncio", "*", "process", PROCESS), ("_osx_support", "*", "process", PROCESS),
    ("_aix_support", "*", "process", PROCESS), ("_pyrepl", "*", "process", PROCESS),
    ("uuid", "*", "process", "uuid helpers such as _get_command_stdout run commands"),
    ("platform", "*", "process", "platform helpers run external commands"),
    ("imaplib", "IMAP4_stream", "process", "starts a shell command"),
    ("webbrowser", "*", "process", "starts a browser process"),
    ("signal", "*", "process", "sends signals to processes"),
    ("builtins", "eval", "eval", EVAL), ("builtins", "exec", "eval", EVAL),
    ("builtins", "compile", "eval", EVAL), ("builtins", "__import__", "import", IMPORT),
    ("builtins", "breakpoint", "debug", DEBUG), ("builtins", "input", "eval", "reads from the terminal"),
    ("builtins", "help", "process", "starts a pager process"),
    ("builtins", "open", "file", FILEIO), ("builtins", "getattr", "gadget", GADGET),
    ("builtins", "setattr", "gadget", GADGET), ("builtins", "delattr", "gadget", GADGET),
    ("builtins", "vars", "gadget", GADGET), ("builtins", "globals", "gadget", GADGET),
    ("builtins", "locals", "gadget", GADGET), ("builtins", "type", "gadget", "creates classes with arbitrary attributes"),
    ("builtins", "exit", "interpreter", INTERPRETER), ("builtins", "quit", "interpreter", INTERPRETER),
    ("builtins", "apply", "gadget", GADGET), ("builtins", "execfile", "eval", EVAL),
    ("builtins", "file", "file", FILEIO), ("builtins", "reload", "import", IMPORT),
    ("__builtin__", "*", "gadget", "Python 2 builtins (mapped to builtins on load)"),
    ("code", "*", "eval", EVAL), ("codeop", "*", "eval", EVAL), ("runpy", "*", "eval", EVAL),
    ("importlib", "*", "import", IMPORT), ("imp", "*", "import", IMPORT), ("zipimport", "*", "import", IMPORT),
    ("pkgutil", "*", "import", "resolve_name/find_loader reach any module attribute"),
    ("types", "*", "eval", "builds functions and code objects"), ("marshal", "*", "eval", "loads code objects"),
    ("pydoc", "*", "import", "locate() imports anything; pager runs commands"),
    ("inspect", "*", "gadget", GADGET), ("gc", "*", "gadget", "reaches every live object"),
    ("sys", "*", "interpreter", INTERPRETER), ("site", "*", "import", IMPORT),
    ("_interpreters", "*", "eval", EVAL), ("_xxsubinterpreters", "*", "eval", EVAL),
    ("profile", "*", "debug", DEBUG), ("cProfile", "*", "debug", DEBUG), ("pdb", "*", "debug", DEBUG),
    ("bdb", "*", "debug", DEBUG), ("timeit", "*", "debug", DEBUG), ("trace", "*", "debug", DEBUG),
    ("doctest", "*", "debug", DEBUG), ("unittest", "*", "debug", DEBUG), ("test", "*", "debug", DEBUG),
    ("idlelib", "*", "debug", "IDE helpers evaluate code"), ("lib2to3", "*", "eval", EVAL),
    ("functools", "*", "gadget", "partial/reduce wrap and call other callables"),
    ("operator", "*", "gadget", GADGET), ("_operator", "*", "gadget", GADGET),
    ("copyreg", "*", "gadget", "extension registry and constructors reach any class"),
    ("copy_reg", "*", "gadget", "extension registry and constructors reach any class"),
    ("ctypes", "*", "native", NATIVE), ("_ctypes", "*", "native", NATIVE), ("cffi", "*", "native", NATIVE),
    ("mmap", "*", "file", FILEIO),
    ("io", "*", "file", FILEIO), ("_io", "*", "file", FILEIO), ("shutil", "*", "file", FILEIO),
    ("pathlib", "*", "file", FILEIO), ("tempfile", "*", "file", FILEIO), ("glob", "*", "file", FILEIO),
    ("fileinput", "*", "file", FILEIO), ("zipfile", "*", "file", FILEIO), ("tarfile", "*", "file", FILEIO),
    ("logging", "*", "file", "log handlers create files and sockets"), ("sqlite3", "*", "file", FILEIO),
    ("distutils", "*", "package", PACKAGE), ("setuptools", "*", "package", PACKAGE),
    ("pip", "*", "package", PACKAGE), ("ensurepip", "*", "package", PACKAGE), ("venv", "*", "package", PACKAGE),
    ("socket", "*", "network", NETWORK), ("ssl", "*", "network", NETWORK), ("urllib", "*", "network", NETWORK),
    ("urllib2", "*", "network", NETWORK), ("requests", "*", "network", NETWORK), ("http", "*", "network", NETWORK),
    ("httplib", "*", "network", NETWORK), ("ftplib", "*", "network", NETWORK), ("smtplib", "*", "network", NETWORK),
    ("telnetlib", "*", "network", NETWORK), ("poplib", "*", "network", NETWORK), ("nntplib", "*", "network", NETWORK),
    ("xmlrpc", "*", "network", NETWORK), ("aiohttp", "*", "network", NETWORK), ("httpx", "*", "network", NETWORK),
    ("pickle", "*", "nested", NESTED), ("_pickle", "*", "nested", NESTED), ("cPickle", "*", "nested", NESTED),
    ("dill", "*", "nested", NESTED), ("cloudpickle", "*", "nested", NESTED), ("shelve", "*", "nested", NESTED),
    ("jsonpickle", "*", "nested", NESTED), ("yaml", "*", "nested", "yaml.load can build arbitrary objects"),
    ("joblib", "load", "nested", NESTED), ("joblib.numpy_pickle", "load", "nested", NESTED),
    ("joblib.numpy_pickle_compat", "*", "file", "old joblib wrappers read arrays from side files"),
    ("pandas.io.pickle", "*", "nested", NESTED), ("pandas", "read_pickle", "nested", NESTED),
    ("numpy", "load", "nested", NESTED), ("numpy.lib.npyio", "*", "nested", NESTED),
    ("numpy", "fromfile", "file", FILEIO), ("numpy", "memmap", "file", FILEIO),
    ("numpy", "loadtxt", "file", FILEIO), ("numpy", "save", "file", FILEIO),
    ("numpy.f2py", "*", "eval", "f2py helpers evaluate Fortran expressions as Python"),
    ("numpy.testing", "*", "eval", "testing helpers such as runstring execute code"),
    ("numpy.distutils", "*", "package", PACKAGE), ("numpy.ctypeslib", "*", "native", NATIVE),
    ("torch", "load", "nested", NESTED), ("torch.serialization", "*", "nested", NESTED),
    ("torch.storage", "_load_from_bytes", "nested", NESTED), ("torch.jit", "load", "nested", NESTED),
    ("torch.hub", "*", "network", "downloads and runs repository code"), ("torch.package", "*", "nested", NESTED),
    ("torch._C", "*", "native", "low-level bindings, including file-backed storage"),
    ("torch.utils.cpp_extension", "*", "package", "compiles and loads native code"),
    ("torch._inductor", "*", "eval", "compiles and runs generated code"), ("torch._dynamo", "*", "eval", EVAL),
    ("torch.fx", "*", "eval", "generates and evaluates Python code"),
    ("torch.utils.collect_env", "*", "process", PROCESS), ("torch.utils.bottleneck", "*", "debug", DEBUG),
    ("torch.utils.data.datapipes", "*", "nested", NESTED), ("torch.utils._config_module", "*", "nested", NESTED),
    ("torch.distributed", "*", "network", NETWORK), ("torch.multiprocessing", "*", "process", PROCESS),
    ("torch.jit.unsupported_tensor_ops", "*", "eval", EVAL), ("torch.testing", "*", "eval", EVAL),
    ("keras.models", "load_model", "nested", NESTED), ("tensorflow", "*", "eval", "TensorFlow can run file and Python ops"),
)

# Attribute names whose appearance inside a dotted qualname means the path walks out of the
# named object into its internals (e.g. ``OrderedDict.__init__.__globals__``).
ESCAPE_ATTRIBUTES: frozenset[str] = frozenset(
    ["__globals__", "__builtins__", "__dict__", "__class__", "__subclasses__", "__code__", "__closure__", "__import__", "__getattribute__", "__getattr__", "__init__", "__new__", "__reduce__", "__reduce_ex__", "__setstate__", "__call__", "__self__", "__func__", "__module__", "__loader__", "__spec__", "__base__", "__bases__", "__mro__", "__defaults__", "__kwdefaults__", "__wrapped__", "__get__", "__set__", "__del__"]
)
