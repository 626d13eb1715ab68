"""The kernel's argument table (``abi.py``) and what is derived from it agree with each
other, with the core that takes the arguments and with the generated module."""

import inspect
import re

import numpy as np
import pytest

from batchivp import abi, render
from batchivp.core import dop853 as core
from batchivp.core import driver
from batchivp.models import lorenz


def test_dop853_advance_takes_the_kernel_arguments_in_table_order():
    params = list(inspect.signature(driver.dop853_advance).parameters)
    expected = (list(abi.KERNEL_ARGUMENTS) + [w[0] for w in abi.WORK_ARRAYS]
                + [c.lower() for c in ("n", "m", "n_ev", "recording")])
    assert params == expected
    assert len(params) <= abi.MAX_CALL_ARGUMENTS


def test_kernel_arguments_are_the_records_in_table_order():
    inputs = abi.Inputs(*abi.Inputs._fields)
    state = abi.State(*abi.State._fields)
    assert abi.kernel_arguments(inputs, state) == abi.KERNEL_ARGUMENTS
    roles = [a.role for a in abi.ARGUMENTS]
    assert roles == sorted(roles, key=[abi.INPUT, abi.STATE, abi.OUTPUT].index)
    assert roles.count(abi.OUTPUT) == 1  # guvectorize takes the output last


def test_generated_entry_point_has_the_table_signature():
    text, _ = render.render_source("cpu", 3, [lorenz])
    entry = text[text.index("def dop853_kernel("):]
    params = re.sub(r"\s+", " ", entry[len("def dop853_kernel("):entry.index(")")]).split(", ")
    assert params == list(abi.KERNEL_ARGUMENTS)
    decorator = text[:text.index("def dop853_kernel(")].rstrip().splitlines()[-1]
    assert abi.gufunc_signature() in decorator and abi.gufunc_layout() in decorator
    call = re.sub(r"\s+", " ", entry[entry.index("dop853_advance("):])
    assert call.startswith("dop853_advance(" + ", ".join(abi.KERNEL_ARGUMENTS) + ", K, F, W")


def test_signature_layout_and_ptx_types_follow_the_table():
    types = re.findall(r"(float64|int64)\[([:, ]*)\]", abi.gufunc_signature())
    layout_in, layout_out = abi.gufunc_layout().split("->")
    dims = re.findall(r"\(([a-z,]*)\)", layout_in) + re.findall(r"\(([a-z,]*)\)", layout_out)
    assert len(types) == len(dims) == len(abi.ARGUMENTS)
    for (dtype, colons), letters, arg in zip(types, dims, abi.ARGUMENTS):
        assert dtype == arg.dtype
        assert colons.count(":") == len(arg.dims) == len(letters.split(","))
        assert tuple(letters.split(",")) == arg.dims
    assert layout_out == "(n)" and abi.ARGUMENTS[-1].role == abi.OUTPUT


def test_ptx_types_are_contiguous_arrays_of_the_table_dtypes():
    pytest.importorskip("numba")
    for arg, numba_type in zip(abi.ARGUMENTS, abi.ptx_types()):
        assert numba_type.ndim == len(arg.dims)
        assert str(numba_type.dtype) == arg.dtype
        assert numba_type.layout == "C"


def test_new_state_shapes_fill_and_size():
    sizes = abi.core_sizes(4, n_params=2, n_eval=5, n_slots=3, n_stored=6, n_rows=7,
                           n_interpolants=7)
    state = abi.new_state(2, sizes)
    assert state.yout.shape == (2, 4, 5)
    assert state.y_events.shape == (2, 3, 6, 4)
    assert state.rec_F.shape == (2, 7, 7, 4)
    assert state.istate.dtype == np.int64 and state.n_events.dtype == np.int64
    assert np.all(state.istate[:, core.IS_STATUS] == core.STATUS_PENDING)
    assert np.isnan(state.y).all() and np.isnan(state.t_events).all()
    assert not state.fstate.any() and not state.rec_F.any()
    assert abi.state_bytes(2, sizes) == sum(a.nbytes for a in state)


def test_pack_config_puts_each_field_at_its_core_index():
    tcfg, icfg = abi.pack_config(
        2, t0=[0.0, 1.0], tf=5.0, first_step=0.0, max_step=np.inf, handle=[1, 0], n_eval=3,
        max_steps=abi.UNLIMITED_STEPS, chunk_steps=10, event_buffer=4,
        record=core.RECORD_STEPS, record_rows=8, event_rule=core.EVENTS_SCIPY, n_events=2)
    assert tcfg[:, core.TC_T0].tolist() == [0.0, 1.0] and tcfg[1, core.TC_TF] == 5.0
    assert tcfg[0, core.TC_MAX_STEP] == np.inf
    assert icfg.dtype == np.int64 and icfg[:, core.IC_HANDLE].tolist() == [1, 0]
    assert icfg[0, core.IC_MAX_STEPS] == abi.UNLIMITED_STEPS and icfg[1, core.IC_CHUNK_STEPS] == 10
    assert icfg[0, core.IC_RECORD_ROWS] == 8 and icfg[0, core.IC_EVENT_RULE] == core.EVENTS_SCIPY
    assert icfg[1, core.IC_N_EVENTS] == 2


def test_pack_config_refuses_a_missing_or_unknown_field():
    with pytest.raises(TypeError, match=r"\['handle', 'typo'\]"):
        abi.pack_config(1, t0=0.0, tf=1.0, first_step=0.0, max_step=1.0, typo=1, n_eval=0,
                        max_steps=1, chunk_steps=1, event_buffer=1, record=0, record_rows=1,
                        event_rule=0, n_events=0)


def test_contiguous_rows_copies_only_a_p_whose_rows_are_strided():
    """A linked kernel hands each problem's row of p to user functions by pointer."""
    p = np.arange(12.0).reshape(3, 4)
    inputs = abi.Inputs(**dict.fromkeys(abi.Inputs._fields, p))._replace(
        rtol=np.broadcast_to(1e-6, (3, 4)))
    assert abi.contiguous_rows(inputs) is inputs
    broadcast = inputs._replace(p=np.broadcast_to(p[:1], (5, 4)))
    assert abi.contiguous_rows(broadcast).p is broadcast.p
    out = abi.contiguous_rows(inputs._replace(p=np.asfortranarray(p)))
    assert out.p[1].flags.c_contiguous and out.rtol is inputs.rtol
    np.testing.assert_array_equal(out.p, p)
