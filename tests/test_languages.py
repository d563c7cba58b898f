"""Language codes as real corpora write them: TICO-19, FLORES+, UDHR (the convention tables)."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import SHARED, need_shared
from xling_probe import LanguageCodeError, normalize_code
from xling_probe.data.conventions import CONVENTIONS, detect_convention
from xling_probe.data.languages import language_name, read_code
from xling_probe.labels import resolve_language

UDHR_402 = SHARED / "udhr" / "udhr_402x50.tsv"

# TICO-19's language list (as its data files write the codes).
TICO19 = ["am", "ar", "bn", "ckb", "din", "es-LA", "fa", "fr", "fuv", "ha", "hi", "id", "km", "kr", "ku", "lg", "ln",
          "mr", "ms", "my", "ne", "nus", "om", "prs", "ps", "pt-BR", "ru", "rw", "so", "sw", "ta", "ti", "tl", "ur",
          "zh", "zu"]

# FLORES-200 codes (ISO 639-3 + ISO 15924), a language per code.
FLORES = """ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab arb_Arab
arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn
bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn
cjk_Latn ckb_Arab crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn
eus_Latn ewe_Latn fao_Latn pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn gle_Latn glg_Latn
grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn
isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn
kaz_Cyrl kbp_Latn kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo lvs_Latn
lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn luo_Latn lus_Latn mag_Deva mai_Deva
mal_Mlym mar_Deva min_Arab min_Latn mkd_Cyrl plt_Latn mlt_Latn mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr
nld_Latn nno_Latn nob_Latn npi_Deva nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn
pol_Latn por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Olck scn_Latn shn_Mymr
sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn
sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng
tpi_Latn tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab uzn_Latn
vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans zho_Hant zul_Latn""".split()


@pytest.mark.parametrize("code, canonical", [
    ("es-LA", "es-419"), ("es_LA", "es-419"), ("tl", "tl"), ("tgl", "tl"), ("prs", "prs"), ("fil", "fil"),
    ("ku", "ku"), ("ckb", "ckb"), ("fa", "fa"), ("pt-BR", "pt-BR"), ("zh", "zh"), ("ps", "ps"), ("ti", "ti"),
    ("din", "din"), ("fuv", "fuv"), ("kr", "kr"),
])
def test_tico19_codes_read_as_the_languages_they_name(code, canonical):
    # Before: es-LA was "Spanish (Laos)", tl became fil, prs became fa-AF, din/fuv/kr were unknown.
    assert normalize_code(code) == canonical


def test_tico19_codes_are_distinct_and_named_and_the_convention_is_reported():
    codes = [normalize_code(c) for c in TICO19]
    assert len(set(codes)) == len(TICO19) == 36
    es = read_code("es-LA")
    assert (es.code, es.name) == ("es-419", "Spanish (Latin America)")
    assert es.note == "es-LA read as es-419 (Latin American Spanish, TICO-19 convention)"
    assert read_code("prs").name == "Dari" and read_code("tl").name == "Tagalog" and read_code("fil").name == "Filipino"
    assert read_code("fr").note is None
    # TICO-19's zh is Simplified Chinese: read so only under its convention
    assert normalize_code("zh", "tico19") == "zh-Hans" and normalize_code("zh") == "zh"
    assert read_code("zh", "tico19").note == "zh read as zh-Hans (Simplified Chinese, TICO-19 convention)"
    # conventions=None reads literally
    assert normalize_code("es-LA", None) == "es-LA"
    assert detect_convention(["id", "en", "es-LA", "fr"]) == "tico19"
    assert detect_convention(["id", "en", "fr"]) is None
    with pytest.raises(LanguageCodeError, match="unknown conventions='tico'"):
        normalize_code("fr", "tico")


@pytest.mark.parametrize("code, canonical", [
    ("fra_Latn", "fr"), ("zho_Hans", "zh-Hans"), ("zho_Hant", "zh-Hant"), ("cmn_Hans", "zh-Hans"), ("arb_Arab", "ar"),
    ("arb_Latn", "ar-Latn"), ("pes_Arab", "fa"), ("prs_Arab", "prs"), ("ckb_Arab", "ckb"), ("kmr_Latn", "ku"),
    ("tgl_Latn", "tl"), ("twi_Latn", "tw"), ("aka_Latn", "ak"), ("kor_Hang", "ko"), ("srp_Cyrl", "sr"),
    ("kas_Arab", "ks"), ("kas_Deva", "ks-Deva"), ("yue_Hant", "yue-Hant"), ("pbt_Arab", "pbt"), ("npi_Deva", "ne"),
])
def test_flores_codes(code, canonical):
    assert normalize_code(code) == canonical


def test_flores_codes_are_all_known_distinct_and_agree_with_tico19():
    codes = [normalize_code(c) for c in FLORES]
    dups = {c: n for c, n in Counter(codes).items() if n > 1}
    assert dups == {} and len(codes) == 204
    # the same language from FLORES+ and TICO-19 gets the same code (script dropped when default)
    for flores, tico in [("prs_Arab", "prs"), ("ckb_Arab", "ckb"), ("tgl_Latn", "tl"), ("hau_Latn", "ha"),
                         ("fuv_Latn", "fuv"), ("amh_Ethi", "am"), ("kin_Latn", "rw")]:
        assert normalize_code(flores) == normalize_code(tico)
    assert CONVENTIONS["flores"].readings == {}


@pytest.mark.parametrize("code, canonical, name", [
    ("deu_1901", "de-1901", "German (orthography of 1901)"),
    ("deu_1996", "de-1996", "German (orthography of 1996)"),
    ("ell_monotonic", "el-monoton", "Greek (monotonic)"),
    ("ell_polytonic", "el-polyton", "Greek (polytonic)"),
    ("pes_1", "fa", "Persian"),
    ("pes_2", "prs", "Dari"),
    ("cmn_hans_beijing", "zh-Hans-x-beijing", "Chinese (Simplified, variant beijing)"),
    ("lat_1", "la-x-1", "Latin (variant 1)"),
    ("fuv2", "fuv-x-2", "Nigerian Fulfulde (variant 2)"),
    ("mly_latn", "ms", "Malay"),
    ("mly_arab", "ms-Arab", "Malay (Arabic)"),
    ("vie_han", "vi-Hani", "Vietnamese (Han)"),
    ("hva", "hus-x-hva", "Huastec (San Luís Potosí)"),
    ("roh_puter", "rm-puter", "Romansh (puter)"),
])
def test_udhr_variants_stay_distinct_with_readable_names(code, canonical, name):
    reading = read_code(code)
    assert (reading.code, reading.name) == (canonical, name)


def test_canonical_codes_read_back_to_themselves_and_resolve_by_base():
    for code in TICO19 + FLORES + ["deu_1996", "cmn_hans_beijing", "pes_2", "oci_1", "fuv2", "es-LA"]:
        canonical = normalize_code(code)
        assert normalize_code(canonical) == canonical, code
    assert resolve_language("de", ["de-1996", "en"]) == "de-1996"
    with pytest.raises(LanguageCodeError, match="ambiguous"):
        resolve_language("de", ["de-1901", "de-1996"])
    assert language_name("tl", native=True) == "Tagalog"
    for bad in ("xx", "und", "klingon", "en__GB"):
        with pytest.raises(LanguageCodeError):
            normalize_code(bad)


@pytest.mark.shared
def test_udhr_402_header_maps_to_402_distinct_named_codes():
    path = need_shared(UDHR_402)
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[0] == "id"
    labels = header[1:]
    assert len(labels) == 402
    readings = {lbl: read_code(lbl) for lbl in labels}
    codes = [r.code for r in readings.values()]
    dups = {c: [lbl for lbl in labels if readings[lbl].code == c] for c, n in Counter(codes).items() if n > 1}
    assert dups == {} and len(set(codes)) == 402
    assert all(r.name and not r.name.startswith("Unknown") for r in readings.values())
    # cmn_hans -> zh-Hans: the macrolanguage code (what FLORES+ zho_Hans and users' "zh" give), with the
    # script kept because Simplified and Traditional Chinese are compared as different languages.
    expected = {"cmn_hans": "zh-Hans", "cmn_hans_beijing": "zh-Hans-x-beijing", "arb": "ar", "eng": "en", "por_PT": "pt-PT",
                "por_BR": "pt-BR", "deu_1901": "de-1901", "deu_1996": "de-1996", "tgl": "tl", "pes_2": "prs"}
    assert {k: readings[k].code for k in expected} == expected
