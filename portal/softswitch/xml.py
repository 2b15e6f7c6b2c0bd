"""What every FreeSWITCH mod_xml_curl answer shares."""

NOT_FOUND_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<document type="freeswitch/xml">'
    '<section name="result"><result status="not found"/></section></document>'
)
